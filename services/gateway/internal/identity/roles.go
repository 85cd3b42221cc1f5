package identity

import "slices"

// Role is what a member may do. An owner holds the role for the whole company; the other
// roles hold for one workspace.
type Role string

// Roles, from the most to the least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleEditor Role = "editor"
	RoleViewer Role = "viewer"
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{RoleOwner, RoleAdmin, RoleEditor, RoleViewer} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Assignable reports whether r may be given to a member or an API key: every role but owner,
// which only sign-up creates.
func (r Role) Assignable() bool { return r == RoleAdmin || r == RoleEditor || r == RoleViewer }

// rank orders roles: a lower rank is more powerful.
func (r Role) rank() int {
	if i := slices.Index(Roles(), r); i >= 0 {
		return i
	}
	return len(Roles())
}

// Permission is what an operation needs.
type Permission string

// Permissions a role grants.
const (
	PermCompanyRead     Permission = "company.read"
	PermCompanyManage   Permission = "company.manage"
	PermWorkspaceRead   Permission = "workspace.read"
	PermWorkspaceManage Permission = "workspace.manage"
	PermMembersManage   Permission = "members.manage"
	PermAPIKeysManage   Permission = "apikeys.manage"
	PermDomainsManage   Permission = "domains.manage"
	PermDataRead        Permission = "data.read"
	PermDataWrite       Permission = "data.write"
)

// Requirements that are not granted by a role.
const (
	// PermPublic needs no credentials: sign-up, login, refresh, logout, invitations.
	PermPublic Permission = "public"
	// PermSession needs a signed-in user (not an API key), whatever their role.
	PermSession Permission = "session"
	// PermInternal marks an operation the gateway does not serve: internal callers reach the
	// service directly with a service token.
	PermInternal Permission = "internal"
)

// PermissionInfo describes one permission for the documentation.
type PermissionInfo struct {
	Permission  Permission
	Description string
}

// Permissions lists every permission a role can grant, with what it allows.
func Permissions() []PermissionInfo {
	return []PermissionInfo{
		{PermCompanyRead, "read the company, its plan limits and usage"},
		{PermCompanyManage, "rename the company and create workspaces"},
		{PermWorkspaceRead, "read a workspace, its domains and members"},
		{PermWorkspaceManage, "rename a workspace and define its custom recipient fields"},
		{PermMembersManage, "invite members, change their roles, remove them"},
		{PermAPIKeysManage, "create, list and revoke API keys"},
		{PermDomainsManage, "add and delete sending domains"},
		{PermDataRead, "read recipients, campaigns and events"},
		{PermDataWrite, "create and change recipients and campaigns, ingest events"},
	}
}

// Granted is THE role → permission table. An owner holds every permission in every
// workspace of the company; the other roles hold theirs in their workspace only.
func Granted(r Role) []Permission {
	switch r {
	case RoleOwner:
		return []Permission{PermCompanyRead, PermCompanyManage, PermWorkspaceRead, PermWorkspaceManage,
			PermMembersManage, PermAPIKeysManage, PermDomainsManage, PermDataRead, PermDataWrite}
	case RoleAdmin:
		return []Permission{PermCompanyRead, PermWorkspaceRead, PermWorkspaceManage,
			PermMembersManage, PermAPIKeysManage, PermDomainsManage, PermDataRead, PermDataWrite}
	case RoleEditor:
		return []Permission{PermCompanyRead, PermWorkspaceRead, PermDataRead, PermDataWrite}
	case RoleViewer:
		return []Permission{PermCompanyRead, PermWorkspaceRead, PermDataRead}
	default:
		return nil
	}
}

// Grants reports whether role r holds permission p.
func (r Role) Grants(p Permission) bool { return slices.Contains(Granted(r), p) }
