// Package signaling hosts the WebSocket signaling of scheduled video conferences: auth, waiting room and chat.
package signaling
