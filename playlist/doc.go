// Package playlist rewrites the URIs of HLS playlists so that every child request carries the viewer's token.
package playlist
