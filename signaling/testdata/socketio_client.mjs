// A conference through the real socket.io-client, as the original front end connects: websocket transport,
// room in the query, token in the socket_io_token_{content_id} cookie. Prints "advance" each time it waits for
// the server's next ping (the Go test then moves the server's clock), and one JSON line at the end; exit 1 on
// failure.
import { io } from 'socket.io-client';

const { SIO_URL, ROOM, CID, ORIGIN, MOD_TOKEN, ALICE_TOKEN, BOB_TOKEN, HEARTBEATS } = process.env;

function connect(token) {
  return io(SIO_URL, {
    path: '/socket.io/',
    transports: ['websocket'],
    query: { room: ROOM },
    extraHeaders: { Cookie: `socket_io_token_${CID}=${token}`, Origin: ORIGIN },
    reconnection: false,
    timeout: 5000,
  });
}

function next(sock, ev) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${ev}`)), 5000);
    sock.once(ev, (d) => { clearTimeout(t); resolve(d); });
  });
}

function fail(msg) {
  console.log(JSON.stringify({ ok: false, error: msg }));
  process.exit(1);
}

const grant = `join_room_${ROOM}`;
const result = {};
try {
  const mod = connect(MOD_TOKEN);
  const modList = next(mod, 'waiting_room_list');
  const modConnected = next(mod, 'connected');
  await next(mod, 'connect');
  result.moderatorConnected = await modConnected;
  result.initialList = await modList;

  const alice = connect(ALICE_TOKEN);
  const bob = connect(BOB_TOKEN);
  const bobGrants = [];
  bob.on(grant, (d) => bobGrants.push(d));
  await Promise.all([next(alice, 'connect'), next(bob, 'connect')]);

  for (const [who, sock] of [['alice', alice], ['bob', bob]]) {
    const joined = next(mod, 'waiting_participant_joined');
    const ack = next(sock, 'join_waiting_room_response');
    sock.emit('join_waiting_room', { room_name: ROOM, email: 'forged@example.com' });
    await ack;
    result[`${who}Joined`] = await joined;
  }

  const aliceGrant = next(alice, grant);
  const acceptResp = next(mod, 'accept_participant_response');
  mod.emit('accept_participant', { room_name: ROOM, email: 'alice@example.com' });
  result.acceptResponse = await acceptResp;
  result.aliceGrant = await aliceGrant;

  const modChat = next(mod, 'chat_message');
  bob.emit('chat_message', { text: 'hello from bob' });
  result.chatAtModerator = await modChat;

  const wrongRoom = next(bob, 'error');
  bob.emit('join_waiting_room', { room_name: 'another room' });
  result.wrongRoomError = await wrongRoom;

  // Heartbeat periods past the server's idle timeout: socket.io-client drops a socket that misses pings, the
  // server one that misses pongs. Each period every socket gets the ping and answers it; a request sent behind
  // the answer comes back once the server has read it, so the next period starts with every answer counted.
  const socks = [mod, alice, bob];
  for (let i = 0; i < Number(HEARTBEATS); i++) {
    const pings = socks.map((s) => next(s.io, 'ping'));
    console.log('advance');
    await Promise.all(pings);
    await Promise.all(socks.map((s) => {
      const read = next(s, 'refresh_token_response');
      s.emit('refresh_token', { token: '' });
      return read;
    }));
  }
  result.connectedAfterHeartbeats = [mod.connected, alice.connected, bob.connected];
  result.bobGrants = bobGrants;
  for (const s of [mod, alice, bob]) s.disconnect();
  console.log(JSON.stringify({ ok: true, ...result }));
  process.exit(0);
} catch (e) {
  fail(String(e && e.message || e));
}
