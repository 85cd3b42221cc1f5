package app

// maxServiceMessage is the largest message the services' gRPC servers accept (libs/rpc). A
// JSON body never grows on its way to protobuf (field names become tags, enum names and
// timestamps numbers), so a route whose body limit stays within it never has a body the
// service refuses for its size.
const maxServiceMessage = 8 << 20

// RouteBodyLimits is THE table of routes whose request bodies have a limit of their own, in
// bytes, instead of HTTP_BODY_LIMIT: "METHOD /path/template", as the contracts' google.api.http
// bindings write it. A test checks that every entry names a route the gateway serves.
func RouteBodyLimits() map[string]int64 {
	return map[string]int64{
		// A batch carries up to 1000 events (events-ingest's limit), each with a user agent,
		// a URL and the rest: far more than the default allows for one request.
		"POST /v1/workspaces/{workspace_id}/domains/{domain_id}/events:batch": maxServiceMessage,
	}
}
