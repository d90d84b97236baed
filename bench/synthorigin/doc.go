// Package synthorigin is a synthetic live HLS origin that behaves like Cesbo Astra, for the demo, the tests and the load harness.
package synthorigin
