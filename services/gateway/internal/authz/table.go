package authz

import (
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	identityv1 "github.com/heraldmail/herald/proto/gen/go/herald/identity/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// Files are the contracts whose routes the gateway serves: the identity service in process,
// the others proxied.
func Files() []protoreflect.FileDescriptor {
	return []protoreflect.FileDescriptor{
		identityv1.File_herald_identity_v1_identity_proto,
		recipientv1.File_herald_recipient_v1_recipient_proto,
		recipientv1.File_herald_recipient_v1_import_proto,
		campaignv1.File_herald_campaign_v1_campaign_proto,
		eventsv1.File_herald_events_v1_events_proto,
		eventsv1.File_herald_events_v1_stats_proto,
	}
}

// InProcessService is the service the gateway serves itself; the routes of every other
// service are proxied with a downscoped token.
const InProcessService = "herald.identity.v1.IdentityService"

// WorkspaceMethods are the proxied RPCs whose routes name a workspace but no domain: what
// they serve belongs to the whole workspace (a workspace's custom field definitions), so the
// token forwarded for them is narrowed to the workspace only.
func WorkspaceMethods() map[string]bool {
	return map[string]bool{
		recipientv1.RecipientService_CreateFieldDefinition_FullMethodName: true,
		recipientv1.RecipientService_ListFieldDefinitions_FullMethodName:  true,
		recipientv1.RecipientService_GetFieldDefinition_FullMethodName:    true,
		recipientv1.RecipientService_UpdateFieldDefinition_FullMethodName: true,
		recipientv1.RecipientService_RetireFieldDefinition_FullMethodName: true,
	}
}

// Methods is THE table of what every RPC needs: full method name → permission. Every RPC of
// every service in Files has an entry (a test walks the descriptors); a route whose RPC has
// none is refused.
func Methods() map[string]identity.Permission {
	return map[string]identity.Permission{
		identityv1.IdentityService_SignUp_FullMethodName:           identity.PermPublic,
		identityv1.IdentityService_LogIn_FullMethodName:            identity.PermPublic,
		identityv1.IdentityService_Refresh_FullMethodName:          identity.PermPublic,
		identityv1.IdentityService_LogOut_FullMethodName:           identity.PermPublic,
		identityv1.IdentityService_AcceptInvitation_FullMethodName: identity.PermPublic,
		identityv1.IdentityService_GetMe_FullMethodName:            identity.PermSession,
		identityv1.IdentityService_GetCompany_FullMethodName:       identity.PermCompanyRead,
		identityv1.IdentityService_UpdateCompany_FullMethodName:    identity.PermCompanyManage,
		identityv1.IdentityService_CreateWorkspace_FullMethodName:  identity.PermCompanyManage,
		identityv1.IdentityService_ListWorkspaces_FullMethodName:   identity.PermWorkspaceRead,
		identityv1.IdentityService_GetWorkspace_FullMethodName:     identity.PermWorkspaceRead,
		identityv1.IdentityService_UpdateWorkspace_FullMethodName:  identity.PermWorkspaceManage,
		identityv1.IdentityService_CreateDomain_FullMethodName:     identity.PermDomainsManage,
		identityv1.IdentityService_ListDomains_FullMethodName:      identity.PermWorkspaceRead,
		identityv1.IdentityService_GetDomain_FullMethodName:        identity.PermWorkspaceRead,
		identityv1.IdentityService_DeleteDomain_FullMethodName:     identity.PermDomainsManage,
		identityv1.IdentityService_InviteMember_FullMethodName:     identity.PermMembersManage,
		identityv1.IdentityService_ListMembers_FullMethodName:      identity.PermWorkspaceRead,
		identityv1.IdentityService_UpdateMember_FullMethodName:     identity.PermMembersManage,
		identityv1.IdentityService_RemoveMember_FullMethodName:     identity.PermMembersManage,
		identityv1.IdentityService_CreateApiKey_FullMethodName:     identity.PermAPIKeysManage,
		identityv1.IdentityService_ListApiKeys_FullMethodName:      identity.PermAPIKeysManage,
		identityv1.IdentityService_RevokeApiKey_FullMethodName:     identity.PermAPIKeysManage,
		// The flag operations take their workspace from the query or the body: any member gets
		// through here, and the flag administration (internal/flagadmin) authorizes each
		// change itself: operators the global values, owners their company and its
		// workspaces, admins their workspace; API keys change nothing.
		identityv1.IdentityService_ListFlags_FullMethodName:     identity.PermWorkspaceRead,
		identityv1.IdentityService_SetFlag_FullMethodName:       identity.PermWorkspaceRead,
		identityv1.IdentityService_ClearFlag_FullMethodName:     identity.PermWorkspaceRead,
		identityv1.IdentityService_ListFlagAudit_FullMethodName: identity.PermWorkspaceRead,

		recipientv1.RecipientService_CreateRecipient_FullMethodName:       identity.PermDataWrite,
		recipientv1.RecipientService_GetRecipient_FullMethodName:          identity.PermDataRead,
		recipientv1.RecipientService_UpdateRecipientStatus_FullMethodName: identity.PermDataWrite,
		recipientv1.RecipientService_UpdateRecipient_FullMethodName:       identity.PermDataWrite,
		recipientv1.RecipientService_DeleteRecipient_FullMethodName:       identity.PermDataWrite,
		recipientv1.RecipientService_EraseRecipient_FullMethodName:        identity.PermDataWrite,
		recipientv1.RecipientService_ListRecipients_FullMethodName:        identity.PermDataRead,
		// Custom fields shape every recipient of the workspace: admins define them, anyone who
		// reads recipients reads them.
		recipientv1.RecipientService_CreateFieldDefinition_FullMethodName: identity.PermWorkspaceManage,
		recipientv1.RecipientService_ListFieldDefinitions_FullMethodName:  identity.PermDataRead,
		recipientv1.RecipientService_GetFieldDefinition_FullMethodName:    identity.PermDataRead,
		recipientv1.RecipientService_UpdateFieldDefinition_FullMethodName: identity.PermWorkspaceManage,
		recipientv1.RecipientService_RetireFieldDefinition_FullMethodName: identity.PermWorkspaceManage,
		recipientv1.RecipientService_CreateBulkOperation_FullMethodName:   identity.PermDataWrite,
		recipientv1.RecipientService_GetBulkOperation_FullMethodName:      identity.PermDataRead,
		recipientv1.RecipientService_RunBulkOperationBatch_FullMethodName: identity.PermInternal,

		// Imports (internal/importapi serves the upload and the download with these rules).
		// UploadImport is the stream the gateway's upload handler opens after authorizing
		// CreateImport's route; the worker's calls are internal.
		recipientv1.ImportService_CreateImport_FullMethodName:             identity.PermDataWrite,
		recipientv1.ImportService_UploadImport_FullMethodName:             identity.PermInternal,
		recipientv1.ImportService_GetImport_FullMethodName:                identity.PermDataRead,
		recipientv1.ImportService_CancelImport_FullMethodName:             identity.PermDataWrite,
		recipientv1.ImportService_DownloadImportRejections_FullMethodName: identity.PermDataRead,
		recipientv1.ImportService_BeginImportRun_FullMethodName:           identity.PermInternal,
		recipientv1.ImportService_ReadImportFile_FullMethodName:           identity.PermInternal,
		recipientv1.ImportService_ApplyImportBatch_FullMethodName:         identity.PermInternal,

		campaignv1.CampaignService_CreateCampaign_FullMethodName: identity.PermDataWrite,
		campaignv1.CampaignService_GetCampaign_FullMethodName:    identity.PermDataRead,

		eventsv1.EventsIngestService_IngestEvents_FullMethodName:      identity.PermDataWrite,
		eventsv1.EventsIngestService_StreamEvents_FullMethodName:      identity.PermInternal,
		eventsv1.EventsIngestService_IngestEventStream_FullMethodName: identity.PermInternal,

		eventsv1.EventStatsService_GetCampaignStats_FullMethodName:    identity.PermDataRead,
		eventsv1.EventStatsService_ListDailyStats_FullMethodName:      identity.PermDataRead,
		eventsv1.EventStatsService_ListRecipientEvents_FullMethodName: identity.PermDataRead,
	}
}
