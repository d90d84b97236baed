// The waiting-room flow through the real socket.io-client, as the original front end connects: default options
// (long polling first, then the upgrade to a WebSocket) unless TRANSPORT names one transport, the room in the
// query, the token in the socket_io_token_{content_id} cookie, and ack callbacks. Prints "advance" each time it
// waits for the server's next ping and "expire" when it waits for Dave's token to run out (the Go test then
// moves the server's clock), and one JSON line at the end; exit 1 on failure.
import { io } from 'socket.io-client';

const { SIO_URL, ROOM, CID, ORIGIN, TRANSPORT, HEARTBEATS } = process.env;
const TOKENS = JSON.parse(process.env.TOKENS);
const WAIT = 5000;

function connect(token) {
  const opts = {
    query: { room: ROOM },
    extraHeaders: { Cookie: `socket_io_token_${CID}=${token}`, Origin: ORIGIN },
  };
  if (TRANSPORT !== 'default') opts.transports = [TRANSPORT];
  const sock = io(SIO_URL, opts);
  // The transport the engine opened with, before any upgrade.
  sock.io.once('open', () => { sock.firstTransport = sock.io.engine.transport.name; });
  return sock;
}

function next(emitter, ev) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${ev}`)), WAIT);
    emitter.once(ev, (...args) => { clearTimeout(t); resolve(args.length > 1 ? args : args[0]); });
  });
}

// ack emits with an ack callback and waits for the ack, and for the event that answers it when one does.
async function ack(sock, ev, data, answer) {
  const answered = answer ? next(sock, answer) : Promise.resolve(undefined);
  const got = await sock.timeout(WAIT).emitWithAck(ev, data);
  return { ack: got === undefined ? null : got, answer: (await answered) ?? null };
}

// upgraded waits until the socket runs on its WebSocket.
function upgraded(sock) {
  const eng = sock.io.engine;
  if (eng.transport.name === 'websocket') return Promise.resolve();
  return next(eng, 'upgrade');
}

const grant = `join_room_${ROOM}`;
const result = { joins: [] };
try {
  const mod = connect(TOKENS.mod);
  const modList = next(mod, 'waiting_room_list');
  const modConnected = next(mod, 'connected');
  await next(mod, 'connect');
  result.moderatorConnected = await modConnected;
  result.initialList = await modList;

  const people = {};
  for (const who of ['alice', 'bob', 'carol', 'dave']) {
    const sock = connect(TOKENS[who]);
    const connected = next(sock, 'connected');
    if (who === 'dave') sock.expiring = next(sock, 'token_expiring');
    await next(sock, 'connect');
    await connected;
    people[who] = sock;
  }
  const { alice, bob, carol, dave } = people;
  const bobGrants = [];
  bob.on(grant, (d) => bobGrants.push(d));

  // Join: each participant's ack carries what join_waiting_room_response carries; the moderator hears of them.
  for (const who of ['alice', 'bob', 'carol', 'dave']) {
    const joined = next(mod, 'waiting_participant_joined');
    result.joins.push(await ack(people[who], 'join_waiting_room', { room_name: ROOM, email: 'forged@example.com' }, 'join_waiting_room_response'));
    result[`${who}Joined`] = await joined;
  }

  // List: a moderator arriving now gets everyone waiting, in join order.
  const mod2 = connect(TOKENS.mod2);
  const mod2List = next(mod2, 'waiting_room_list');
  await next(mod2, 'connect');
  result.lateList = await mod2List;

  // Admit one.
  const aliceGrant = next(alice, grant);
  result.acceptOne = await ack(mod, 'accept_participant', { room_name: ROOM, email: 'alice@example.com' }, 'accept_participant_response');
  result.aliceGrant = await aliceGrant;

  // Reject.
  const bobRefusal = next(bob, grant);
  result.reject = await ack(mod, 'reject_participant', { email: 'bob@example.com', reason: 'not on the list' }, 'reject_participant_response');
  result.bobRefusal = await bobRefusal;

  // Admit everyone left.
  const carolGrant = next(carol, grant);
  const daveGrant = next(dave, grant);
  result.acceptAll = await ack(mod, 'accept_participant', { accept_everyone: true }, 'accept_participant_response');
  result.carolGrant = await carolGrant;
  result.daveGrant = await daveGrant;

  // Chat: an event no `*_response` answers is acked without arguments.
  const chats = [mod, mod2, dave].map((s) => next(s, 'chat_message'));
  result.chat = await ack(carol, 'chat_message', { text: 'hello from carol' });
  result.chatReceived = await Promise.all(chats);

  // A payload naming another room: the error comes, and the ack carries it.
  result.wrongRoom = await ack(bob, 'join_waiting_room', { room_name: 'another room' }, 'error');

  // Token refresh.
  result.refresh = await ack(alice, 'refresh_token', { token: TOKENS.aliceRefresh }, 'refresh_token_response');

  // Expiry: Dave was warned when he connected; once the server's clock passes his token's expiry, he is told
  // why and disconnected from the namespace, and socket.io-client does not reconnect.
  result.daveWarned = await dave.expiring;
  const reason = next(dave, 'server_disconnect');
  const gone = next(dave, 'disconnect');
  console.log('expire');
  result.daveReason = await reason;
  result.daveDisconnect = [].concat(await gone)[0];
  result.daveReconnects = dave.active;

  if (TRANSPORT === 'default') {
    await Promise.all([mod, mod2, alice, bob, carol].map(upgraded));
  }

  // Heartbeat periods past the server's idle timeout: socket.io-client drops a socket that misses pings, the
  // server one that misses pongs. Each period every socket gets the ping and answers it; an ack asked for behind
  // the answer comes back once the server has read it, so the next period starts with every answer counted.
  const socks = [mod, mod2, alice, bob, carol];
  for (let i = 0; i < Number(HEARTBEATS); i++) {
    const pings = socks.map((s) => next(s.io, 'ping'));
    console.log('advance');
    await Promise.all(pings);
    await Promise.all(socks.map((s) => s.timeout(WAIT).emitWithAck('refresh_token', { token: '' })));
  }
  result.connectedAfterHeartbeats = socks.map((s) => s.connected);
  result.firstTransports = [...socks, dave].map((s) => s.firstTransport);
  result.transports = socks.map((s) => s.io.engine.transport.name);
  result.bobGrants = bobGrants;
  for (const s of socks) s.disconnect();
  console.log(JSON.stringify({ ok: true, ...result }));
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String((e && e.message) || e), partial: result }));
  process.exit(1);
}
