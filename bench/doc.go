// Package bench is a load harness of simulated HLS viewers and the synthetic Astra-like origin it runs against.
package bench
