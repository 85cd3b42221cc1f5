package grpcapi_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// defineField creates a field definition in b's workspace.
func defineField(t *testing.T, c recipientv1.RecipientServiceClient, b bundle, req *recipientv1.CreateFieldDefinitionRequest) *recipientv1.FieldDefinition {
	t.Helper()
	req.WorkspaceId = b.tenant.WorkspaceID.String()
	resp, err := c.CreateFieldDefinition(as(b.user), req)
	require.NoError(t, err)
	return resp.GetField()
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func TestFieldDefinitions(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws := b.tenant.WorkspaceID.String()

	plan := defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{
		Key: "plan", Label: "Plan", Type: recipientv1.FieldType_FIELD_TYPE_ENUM,
		Options: []string{"free", "pro"}, Required: true, DefaultValue: structpb.NewStringValue("free"),
	})
	require.Equal(t, "plan", plan.GetKey())
	require.Equal(t, []string{"free", "pro"}, plan.GetOptions())
	require.Equal(t, "free", plan.GetDefaultValue().GetStringValue())
	require.Nil(t, plan.GetRetireTime())
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "score", Type: recipientv1.FieldType_FIELD_TYPE_NUMBER})

	t.Run("invalid definitions", func(t *testing.T) {
		t.Parallel()
		for _, req := range map[string]*recipientv1.CreateFieldDefinitionRequest{
			"key":             {Key: "First Name", Type: recipientv1.FieldType_FIELD_TYPE_TEXT},
			"long key":        {Key: "a" + strings.Repeat("b", 64), Type: recipientv1.FieldType_FIELD_TYPE_TEXT},
			"type":            {Key: "no_type"},
			"enum options":    {Key: "tier", Type: recipientv1.FieldType_FIELD_TYPE_ENUM},
			"default type":    {Key: "age", Type: recipientv1.FieldType_FIELD_TYPE_NUMBER, DefaultValue: structpb.NewStringValue("old")},
			"options on text": {Key: "nick", Type: recipientv1.FieldType_FIELD_TYPE_TEXT, Options: []string{"x"}},
		} {
			req.WorkspaceId = ws
			_, err := c.CreateFieldDefinition(as(b.user), req)
			requireCode(t, err, codes.InvalidArgument, "")
		}
		_, err := c.CreateFieldDefinition(as(b.user), &recipientv1.CreateFieldDefinitionRequest{WorkspaceId: ws, Key: "plan", Type: recipientv1.FieldType_FIELD_TYPE_TEXT})
		requireCode(t, err, codes.AlreadyExists, "a field with this key already exists in this workspace")
	})

	t.Run("update is additive", func(t *testing.T) {
		t.Parallel()
		defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "tier", Type: recipientv1.FieldType_FIELD_TYPE_ENUM, Options: []string{"a", "b"}})
		resp, err := c.UpdateFieldDefinition(as(b.user), &recipientv1.UpdateFieldDefinitionRequest{
			WorkspaceId: ws, FieldKey: "tier", Label: "Tier", Options: []string{"a", "b", "c"},
			DefaultValue: structpb.NewStringValue("c"),
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"label", "options", "default_value"}},
		})
		require.NoError(t, err)
		require.Equal(t, "Tier", resp.GetField().GetLabel())
		require.Equal(t, []string{"a", "b", "c"}, resp.GetField().GetOptions())
		require.Equal(t, "c", resp.GetField().GetDefaultValue().GetStringValue())

		_, err = c.UpdateFieldDefinition(as(b.user), &recipientv1.UpdateFieldDefinitionRequest{
			WorkspaceId: ws, FieldKey: "tier", Options: []string{"a", "c"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"options"}},
		})
		requireCode(t, err, codes.FailedPrecondition, "")
		require.Contains(t, err.Error(), "options cannot be removed (missing: b)")

		_, err = c.UpdateFieldDefinition(as(b.user), &recipientv1.UpdateFieldDefinitionRequest{
			WorkspaceId: ws, FieldKey: "tier", Type: recipientv1.FieldType_FIELD_TYPE_TEXT,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"type"}},
		})
		requireCode(t, err, codes.FailedPrecondition, "")
		require.Contains(t, err.Error(), "the type cannot change from enum to text")

		_, err = c.UpdateFieldDefinition(as(b.user), &recipientv1.UpdateFieldDefinitionRequest{
			WorkspaceId: ws, FieldKey: "tier", Required: true,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"required"}},
		})
		requireCode(t, err, codes.FailedPrecondition, "")

		_, err = c.UpdateFieldDefinition(as(b.user), &recipientv1.UpdateFieldDefinitionRequest{
			WorkspaceId: ws, FieldKey: "tier", DefaultValue: structpb.NewStringValue("zzz"),
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"default_value"}},
		})
		requireCode(t, err, codes.InvalidArgument, "")

		got, err := c.GetFieldDefinition(as(b.user), &recipientv1.GetFieldDefinitionRequest{WorkspaceId: ws, FieldKey: "tier"})
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "c"}, got.GetField().GetOptions())
	})

	t.Run("retired field refuses values, keeps stored ones", func(t *testing.T) {
		t.Parallel()
		defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "legacy_id", Type: recipientv1.FieldType_FIELD_TYPE_TEXT})
		r := create(t, c, b, createOpts{Attributes: map[string]any{"legacy_id": "L-1"}})
		resp, err := c.RetireFieldDefinition(as(b.user), &recipientv1.RetireFieldDefinitionRequest{WorkspaceId: ws, FieldKey: "legacy_id"})
		require.NoError(t, err)
		require.NotNil(t, resp.GetField().GetRetireTime())

		_, err = c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{
			WorkspaceId: ws, DomainId: b.tenant.DomainID.String(), Email: "retired@example.com",
			Attributes: mustStruct(t, map[string]any{"legacy_id": "L-2"}),
		})
		requireCode(t, err, codes.InvalidArgument, "attributes.legacy_id: is a retired field and accepts no values")
		got, err := c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: b.tenant.DomainID.String(), RecipientId: r.GetId()})
		require.NoError(t, err)
		require.Equal(t, "L-1", got.GetRecipient().GetAttributes().AsMap()["legacy_id"])

		list, err := c.ListFieldDefinitions(as(b.user), &recipientv1.ListFieldDefinitionsRequest{WorkspaceId: ws})
		require.NoError(t, err)
		var keys []string
		for _, f := range list.GetFields() {
			keys = append(keys, f.GetKey())
		}
		require.Contains(t, keys, "legacy_id")
		_, err = c.UpdateFieldDefinition(as(b.user), &recipientv1.UpdateFieldDefinitionRequest{
			WorkspaceId: ws, FieldKey: "legacy_id", Label: "x", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"label"}},
		})
		requireCode(t, err, codes.FailedPrecondition, "")
	})

	t.Run("attributes are checked against the definitions", func(t *testing.T) {
		t.Parallel()
		dom := b.tenant.DomainID.String()
		_, err := c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: "u1@example.com",
			Attributes: mustStruct(t, map[string]any{"favourite_colour": "blue"})})
		requireCode(t, err, codes.InvalidArgument, "attributes.favourite_colour: is not a custom field of this workspace; define it first")
		_, err = c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: "u2@example.com",
			Attributes: mustStruct(t, map[string]any{"score": "high"})})
		requireCode(t, err, codes.InvalidArgument, "attributes.score: must be a number (field type number), got a string")
		_, err = c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: "u3@example.com",
			Attributes: mustStruct(t, map[string]any{"plan": "enterprise"})})
		requireCode(t, err, codes.InvalidArgument, `attributes.plan: must be one of "free", "pro"`)

		// The required plan takes its default.
		r := create(t, c, b, createOpts{Attributes: map[string]any{"score": 3.0}})
		require.Equal(t, map[string]any{"score": 3.0, "plan": "free"}, r.GetAttributes().AsMap())
	})

	t.Run("another company or workspace sees no definition", func(t *testing.T) {
		t.Parallel()
		other := userToken(t, b.signer, uuid.New())
		_, err := c.GetFieldDefinition(as(other), &recipientv1.GetFieldDefinitionRequest{WorkspaceId: ws, FieldKey: "plan"})
		requireCode(t, err, codes.NotFound, "field definition not found")
		_, err = c.RetireFieldDefinition(as(other), &recipientv1.RetireFieldDefinitionRequest{WorkspaceId: ws, FieldKey: "plan"})
		requireCode(t, err, codes.NotFound, "field definition not found")
		list, err := c.ListFieldDefinitions(as(other), &recipientv1.ListFieldDefinitionsRequest{WorkspaceId: ws})
		require.NoError(t, err)
		require.Empty(t, list.GetFields())
		_, err = c.GetFieldDefinition(as(b.user), &recipientv1.GetFieldDefinitionRequest{WorkspaceId: uuid.NewString(), FieldKey: "plan"})
		requireCode(t, err, codes.NotFound, "field definition not found")

		// A token narrowed to another workspace of the company is out of scope.
		narrowed, err := b.signer.SignScoped("u", b.tenant.CompanyID, tenancy.KindUser, tenancy.Scoped{WorkspaceID: uuid.New(), Role: "admin"}, time.Minute)
		require.NoError(t, err)
		_, err = c.GetFieldDefinition(as(narrowed), &recipientv1.GetFieldDefinitionRequest{WorkspaceId: ws, FieldKey: "plan"})
		requireCode(t, err, codes.NotFound, "")
	})
}

func TestUpdateDeleteEraseRecipient(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "city", Type: recipientv1.FieldType_FIELD_TYPE_TEXT})
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "vip", Type: recipientv1.FieldType_FIELD_TYPE_BOOLEAN})

	r := create(t, c, b, createOpts{Email: "grace@example.com", Attributes: map[string]any{"city": "Arlington"}})
	up, err := c.UpdateRecipient(as(b.user), &recipientv1.UpdateRecipientRequest{
		WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId(),
		Attributes: mustStruct(t, map[string]any{"city": nil, "vip": true}),
		Status:     recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED, StatusReason: "asked by phone",
	})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"vip": true}, up.GetRecipient().GetAttributes().AsMap())
	require.Equal(t, recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED, up.GetRecipient().GetStatus())
	require.Equal(t, "asked by phone", up.GetRecipient().GetStatusReason())
	require.NotNil(t, up.GetRecipient().GetStatusChangeTime())

	_, err = c.UpdateRecipient(as(b.user), &recipientv1.UpdateRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId(),
		Attributes: mustStruct(t, map[string]any{"vip": "yes"})})
	requireCode(t, err, codes.InvalidArgument, "attributes.vip: must be true or false (field type boolean), got a string")
	_, err = c.UpdateRecipient(as(b.user), &recipientv1.UpdateRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId()})
	requireCode(t, err, codes.InvalidArgument, "request: set attributes or status")

	other := userToken(t, b.signer, uuid.New())
	_, err = c.UpdateRecipient(as(other), &recipientv1.UpdateRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId(),
		Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED})
	requireCode(t, err, codes.NotFound, "recipient not found")
	_, err = c.DeleteRecipient(as(other), &recipientv1.DeleteRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId()})
	requireCode(t, err, codes.NotFound, "recipient not found")
	_, err = c.EraseRecipient(as(other), &recipientv1.EraseRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: r.GetId()})
	requireCode(t, err, codes.NotFound, "recipient not found")

	t.Run("delete, then the address may come back", func(t *testing.T) {
		t.Parallel()
		d := create(t, c, b, createOpts{Email: "deleted@example.com"})
		_, err := c.DeleteRecipient(as(b.user), &recipientv1.DeleteRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: d.GetId()})
		require.NoError(t, err)
		_, err = c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: d.GetId()})
		requireCode(t, err, codes.NotFound, "recipient not found")
		_, err = c.DeleteRecipient(as(b.user), &recipientv1.DeleteRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: d.GetId()})
		requireCode(t, err, codes.NotFound, "recipient not found")
		create(t, c, b, createOpts{Email: "deleted@example.com"})
	})

	t.Run("erase keeps only a keyed hash and refuses the address", func(t *testing.T) {
		t.Parallel()
		e := create(t, c, b, createOpts{Email: "erase.me@example.com", Attributes: map[string]any{"city": "Paris"}})
		_, err := c.EraseRecipient(as(b.user), &recipientv1.EraseRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: e.GetId()})
		require.NoError(t, err)
		_, err = c.GetRecipient(as(b.user), &recipientv1.GetRecipientRequest{WorkspaceId: ws, DomainId: dom, RecipientId: e.GetId()})
		requireCode(t, err, codes.NotFound, "recipient not found")

		// Nothing of the address is stored in clear anywhere in the schema.
		var n int
		require.NoError(t, b.admin.QueryRow(t.Context(), `SELECT count(*) FROM recipient.recipients WHERE email = 'erase.me@example.com'`).Scan(&n))
		require.Zero(t, n)
		var hashes int
		require.NoError(t, b.admin.QueryRow(t.Context(), `SELECT count(*) FROM recipient.suppressions WHERE domain_id = $1 AND length(email_hash) = 32`, b.tenant.DomainID).Scan(&hashes))
		require.Equal(t, 1, hashes)
		var leaked bool
		require.NoError(t, b.admin.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM recipient.suppressions s
			WHERE s::text LIKE '%erase.me%' OR email_hash = sha256('erase.me@example.com'))`).Scan(&leaked))
		require.False(t, leaked)

		_, err = c.CreateRecipient(as(b.user), &recipientv1.CreateRecipientRequest{WorkspaceId: ws, DomainId: dom, Email: " Erase.Me@Example.com"})
		requireCode(t, err, codes.FailedPrecondition, "this address was erased from the domain at its owner's request and cannot be added again")

		// Another domain of the company is not concerned.
		otherDomain := b
		otherDomain.tenant.DomainID = uuid.New()
		create(t, c, otherDomain, createOpts{Email: "erase.me@example.com"})
	})
}

func TestListRecipients(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "plan", Type: recipientv1.FieldType_FIELD_TYPE_ENUM, Options: []string{"free", "pro"}})
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "score", Type: recipientv1.FieldType_FIELD_TYPE_NUMBER})
	defineField(t, c, b, &recipientv1.CreateFieldDefinitionRequest{Key: "joined", Type: recipientv1.FieldType_FIELD_TYPE_DATE})

	var all []string
	for i := range 25 {
		plan := "free"
		if i%3 == 0 {
			plan = "pro"
		}
		r := create(t, c, b, createOpts{
			Email:      fmt.Sprintf("user%02d@example.com", i),
			Attributes: map[string]any{"plan": plan, "score": float64(i), "joined": fmt.Sprintf("2030-01-%02d", i+1)},
		})
		all = append(all, r.GetId())
	}
	// Another domain's recipients never show.
	otherDomain := b
	otherDomain.tenant.DomainID = uuid.New()
	create(t, c, otherDomain, createOpts{Email: "user99@example.com", Attributes: map[string]any{"plan": "pro"}})

	list := func(filter *recipientv1.RecipientFilter, size int32) ([]string, *recipientv1.ListRecipientsResponse) {
		t.Helper()
		var ids []string
		var first *recipientv1.ListRecipientsResponse
		token := ""
		for {
			resp, err := c.ListRecipients(as(b.user), &recipientv1.ListRecipientsRequest{WorkspaceId: ws, DomainId: dom, PageSize: size, PageToken: token, Filter: filter})
			require.NoError(t, err)
			if first == nil {
				first = resp
			}
			for _, r := range resp.GetRecipients() {
				ids = append(ids, r.GetId())
			}
			if token = resp.GetNextPageToken(); token == "" {
				return ids, first
			}
		}
	}

	ids, first := list(nil, 10)
	require.Equal(t, all, ids, "every recipient once, oldest first")
	require.Equal(t, int64(25), first.GetTotalSize())
	require.True(t, first.GetTotalSizeExact())
	require.Len(t, first.GetRecipients(), 10)

	ids, first = list(&recipientv1.RecipientFilter{Attributes: []string{"plan=pro"}}, 3)
	require.Len(t, ids, 9)
	require.Equal(t, int64(9), first.GetTotalSize())
	ids, _ = list(&recipientv1.RecipientFilter{Attributes: []string{"score>=20", "plan=free"}}, 100)
	require.Equal(t, []string{all[20], all[22], all[23]}, ids) // 21 and 24 are pro
	ids, _ = list(&recipientv1.RecipientFilter{Attributes: []string{"joined<2030-01-03"}}, 100)
	require.Equal(t, all[:2], ids)
	ids, _ = list(&recipientv1.RecipientFilter{EmailPrefix: "USER1"}, 100)
	require.Equal(t, all[10:20], ids)
	ids, _ = list(&recipientv1.RecipientFilter{EmailPrefix: "user_"}, 100)
	require.Empty(t, ids, "_ is not a wildcard")

	_, err := c.UpdateRecipientStatus(as(b.user), &recipientv1.UpdateRecipientStatusRequest{WorkspaceId: ws, DomainId: dom, RecipientId: all[4], Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED})
	require.NoError(t, err)
	ids, first = list(&recipientv1.RecipientFilter{Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED}, 100)
	require.Equal(t, all[4:5], ids)
	require.Equal(t, int64(1), first.GetTotalSize())
	require.True(t, first.GetTotalSizeExact())
	_, first = list(&recipientv1.RecipientFilter{Status: recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED}, 100)
	require.Equal(t, int64(24), first.GetTotalSize())

	resp, err := c.ListRecipients(as(b.user), &recipientv1.ListRecipientsRequest{WorkspaceId: ws, DomainId: dom, PageSize: 1000})
	require.NoError(t, err)
	created := make([]time.Time, 0, len(resp.GetRecipients()))
	for _, r := range resp.GetRecipients() {
		created = append(created, r.GetCreateTime().AsTime())
	}
	require.True(t, sort.SliceIsSorted(created, func(i, j int) bool { return created[i].Before(created[j]) }))
	ids, _ = list(&recipientv1.RecipientFilter{CreatedAfter: timestamppb.New(created[5]), CreatedBefore: timestamppb.New(created[7])}, 100)
	require.Subset(t, all, ids)

	for name, req := range map[string]*recipientv1.ListRecipientsRequest{
		"page size":       {PageSize: 1001},
		"unknown field":   {Filter: &recipientv1.RecipientFilter{Attributes: []string{"nope=1"}}},
		"range on enum":   {Filter: &recipientv1.RecipientFilter{Attributes: []string{"plan>free"}}},
		"bad number":      {Filter: &recipientv1.RecipientFilter{Attributes: []string{"score=ten"}}},
		"no operator":     {Filter: &recipientv1.RecipientFilter{Attributes: []string{"plan"}}},
		"bad token":       {PageToken: "garbage"},
		"token of filter": {PageToken: first.GetNextPageToken() + "x"},
	} {
		req.WorkspaceId, req.DomainId = ws, dom
		_, err := c.ListRecipients(as(b.user), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
	}
	// A token is bound to its filter.
	page, err := c.ListRecipients(as(b.user), &recipientv1.ListRecipientsRequest{WorkspaceId: ws, DomainId: dom, PageSize: 2})
	require.NoError(t, err)
	_, err = c.ListRecipients(as(b.user), &recipientv1.ListRecipientsRequest{WorkspaceId: ws, DomainId: dom, PageSize: 2, PageToken: page.GetNextPageToken(),
		Filter: &recipientv1.RecipientFilter{EmailPrefix: "user"}})
	requireCode(t, err, codes.InvalidArgument, "page_token: was returned for another filter; use the same filter, or start again without a token")

	// Another company sees an empty domain.
	foreign, err := c.ListRecipients(as(userToken(t, b.signer, uuid.New())), &recipientv1.ListRecipientsRequest{WorkspaceId: ws, DomainId: dom})
	require.NoError(t, err)
	require.Empty(t, foreign.GetRecipients())
	require.Zero(t, foreign.GetTotalSize())
}

func TestRunBulkOperationBatch_internalOnly(t *testing.T) {
	t.Parallel()
	c, b := setup(t)
	ws, dom := b.tenant.WorkspaceID.String(), b.tenant.DomainID.String()
	op, err := c.CreateBulkOperation(as(b.user), &recipientv1.CreateBulkOperationRequest{
		WorkspaceId: ws, DomainId: dom, Action: recipientv1.BulkAction_BULK_ACTION_DELETE,
	})
	require.NoError(t, err)
	require.Equal(t, recipientv1.BulkOperationState_BULK_OPERATION_STATE_PENDING, op.GetOperation().GetState())

	_, err = c.RunBulkOperationBatch(as(b.user), &recipientv1.RunBulkOperationBatchRequest{WorkspaceId: ws, DomainId: dom, OperationId: op.GetOperation().GetId()})
	requireCode(t, err, codes.PermissionDenied, "this operation is internal")

	svc, err := b.signer.ServiceTokenFor("worker", b.tenant)
	require.NoError(t, err)
	res, err := c.RunBulkOperationBatch(as(svc), &recipientv1.RunBulkOperationBatchRequest{WorkspaceId: ws, DomainId: dom, OperationId: op.GetOperation().GetId()})
	require.NoError(t, err)
	require.Equal(t, recipientv1.BulkOperationState_BULK_OPERATION_STATE_SUCCEEDED, res.GetOperation().GetState())
	require.InDelta(t, 100.0, res.GetOperation().GetPercent(), 0)

	// A service token of another partition does not reach it.
	other := b.tenant
	other.DomainID = uuid.New()
	svcOther, err := b.signer.ServiceTokenFor("worker", other)
	require.NoError(t, err)
	_, err = c.RunBulkOperationBatch(as(svcOther), &recipientv1.RunBulkOperationBatchRequest{WorkspaceId: ws, DomainId: dom, OperationId: op.GetOperation().GetId()})
	requireCode(t, err, codes.NotFound, "")

	_, err = c.GetBulkOperation(as(userToken(t, b.signer, uuid.New())), &recipientv1.GetBulkOperationRequest{WorkspaceId: ws, DomainId: dom, OperationId: op.GetOperation().GetId()})
	requireCode(t, err, codes.NotFound, "bulk operation not found")
}
