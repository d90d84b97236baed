// Package configs holds the example configurations; demo.yaml is embedded as the default of `hlsedge demo`.
package configs

import _ "embed"

// Demo is configs/demo.yaml: the edge in front of the synthetic origin that `make run` starts.
//
//go:embed demo.yaml
var Demo []byte
