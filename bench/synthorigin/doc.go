// Package synthorigin is a synthetic live HLS origin, Astra-like or low-latency (LL-HLS), for the demo, the tests and the load harness.
package synthorigin
