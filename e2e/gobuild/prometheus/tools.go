//go:build tools

// Package tools pins Prometheus' module so its prometheus and promtool commands build from
// this module's go.sum (with only the Kubernetes service discovery compiled in).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
