package rest

import (
	"io"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/apipb"
)

// The API's decoder parses a body into a message once, with the API's options, and answers as
// JSONPb's does where the handlers depend on it.
func TestJSONPbDecoder(t *testing.T) {
	t.Parallel()
	m := jsonPb{&runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false}}}
	decode := func(body string) (*apipb.Method, error) {
		var got apipb.Method
		return &got, m.NewDecoder(strings.NewReader(body)).Decode(&got)
	}

	got, err := decode(` {"name": "Send", "request_type_url": "type.googleapis.com/x", "request_streaming": true} `)
	require.NoError(t, err)
	require.True(t, proto.Equal(&apipb.Method{Name: "Send", RequestTypeUrl: "type.googleapis.com/x", RequestStreaming: true}, got))

	for _, body := range []string{"", " \n\t"} {
		_, err = decode(body)
		require.ErrorIs(t, err, io.EOF, "an empty body %q is an empty message to the handlers", body)
	}
	for name, body := range map[string]string{
		"unknown field":     `{"name": "Send", "bogus": 1}`,
		"trailing data":     `{"name": "Send"} {"name": "Again"}`,
		"not JSON":          `name=Send`,
		"cut short":         `{"name": "Se`,
		"wrong type":        `{"name": 1}`,
		"null":              `null`,
		"array for message": `[]`,
	} {
		_, err = decode(body)
		require.Error(t, err, name)
		require.NotErrorIs(t, err, io.EOF, name)
	}

	// A target that is not a message (a body mapped to a field) is decoded as JSONPb does.
	var name string
	require.NoError(t, m.NewDecoder(strings.NewReader(`"Send"`)).Decode(&name))
	require.Equal(t, "Send", name)
}
