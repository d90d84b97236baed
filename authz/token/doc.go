// Package token verifies and mints the credentials viewers and conference clients present: JWTs, Flussonic
// securetokens and the edge's own child tokens.
package token
