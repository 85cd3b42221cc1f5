// Package openapi serves Herald's public REST API description: the OpenAPI (Swagger 2.0)
// document that protoc-gen-openapiv2 merges from every contract under proto/herald.
package openapi

import _ "embed" // for go:embed

// spec is kept as a string so that the embedded document cannot be modified.
//
//go:embed herald.swagger.json
var spec string

// JSON returns the merged OpenAPI document. Each call returns a fresh copy.
func JSON() []byte {
	return []byte(spec)
}
