package structs

// ACL token types (Nomad's).
const (
	ACLClientToken     = "client"
	ACLManagementToken = "management"
)

// ACLPolicy is a named ACL policy: its rules are the policy's HCL source
// (package coordinator/acl parses them), kept as written.
type ACLPolicy struct {
	Name        string `json:"Name"`
	Description string `json:"Description,omitempty"`
	Rules       string `json:"Rules"`
	CreateIndex uint64 `json:"CreateIndex"`
	ModifyIndex uint64 `json:"ModifyIndex"`
}

// ACLPolicyListStub is one row of GET /v1/acl/policies: a policy without
// its rules.
type ACLPolicyListStub struct {
	Name        string `json:"Name"`
	Description string `json:"Description,omitempty"`
	CreateIndex uint64 `json:"CreateIndex"`
	ModifyIndex uint64 `json:"ModifyIndex"`
}

// ACLToken is an ACL token. The servers store only its secret's SHA-256
// (SecretHash, never sent by the API); SecretID is set only in the answer
// that creates the token (bootstrap, create), the one time it is shown.
type ACLToken struct {
	AccessorID string `json:"AccessorID"` // a UUID, not secret: how a token is named
	SecretID   string `json:"SecretID,omitempty"`
	SecretHash string `json:"SecretHash,omitempty"`
	Name       string `json:"Name,omitempty"`
	Type       string `json:"Type"` // ACLClientToken or ACLManagementToken
	// Policies name the policies of a client token (none for management).
	Policies []string `json:"Policies,omitempty"`
	// CreateTime and ExpirationTime are unix nanoseconds; an
	// ExpirationTime of 0 never expires.
	CreateTime     int64  `json:"CreateTime"`
	ExpirationTime int64  `json:"ExpirationTime,omitempty"`
	CreateIndex    uint64 `json:"CreateIndex"`
	ModifyIndex    uint64 `json:"ModifyIndex"`
}

// Public is the token as the API shows it: without its secret's hash.
func (t ACLToken) Public() ACLToken {
	t.SecretHash = ""
	return t
}

// ACLTokenRequest is the body of PUT /v1/acl/token: a token to create.
type ACLTokenRequest struct {
	Name     string   `json:"Name,omitempty"`
	Type     string   `json:"Type,omitempty"` // default ACLClientToken
	Policies []string `json:"Policies,omitempty"`
	// ExpirationTTL is a Go duration ("1h"); "" never expires.
	ExpirationTTL string `json:"ExpirationTTL,omitempty"`
}
