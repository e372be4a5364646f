//go:build tools

// Package tools pins grpcurl (github.com/fullstorydev/grpcurl) for test/e2e/grpcurl.test.ts,
// which builds it into .cache/tools/grpcurl with `go build` (see scripts/grpcurl.sh).
package tools

import _ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
