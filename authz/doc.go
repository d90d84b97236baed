// Package authz decides whether a request for a protected HLS path may be served.
package authz
