// Package bench is a load harness of simulated HLS viewers and conference participants, for `hlsedge bench`.
package bench
