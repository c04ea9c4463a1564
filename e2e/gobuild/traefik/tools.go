//go:build tools

// Package tools pins Traefik so `go build github.com/traefik/traefik/v3/cmd/traefik` builds
// the gateway from this module's go.sum. go.mod copies Traefik's own replace and exclude
// directives (go-http-auth, mux and minheap to their containous forks; tencentcloud-sdk-go
// v3.0.83), which a dependent module must repeat.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
