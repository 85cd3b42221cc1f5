// tools/unleash-server is an npm package, not Go code. This file makes it a module of its own,
// outside the workspace, so that the Go commands of the tools module (go vet ./..., go test
// ./..., golangci-lint) stay out of node_modules, where npm packages may ship .go files.
module github.com/heraldmail/herald/tools/unleash-server

go 1.26
