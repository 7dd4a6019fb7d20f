package coordinator

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/strata-run/strata/coordinator/acl"
	"github.com/strata-run/strata/coordinator/structs"
)

// The ACL system's routes (Nomad's paths and shapes); routeNeeds says
// what each needs.
func (s *httpAPI) aclRoutes(mux *routeMux) {
	mux.HandleFunc("PUT /v1/acl/bootstrap", s.handleACLBootstrap)
	mux.HandleFunc("POST /v1/acl/bootstrap", s.handleACLBootstrap)
	mux.HandleFunc("GET /v1/acl/policies", s.handleACLPolicies)
	mux.HandleFunc("GET /v1/acl/policy/{name}", s.handleACLPolicy)
	mux.HandleFunc("PUT /v1/acl/policy/{name}", s.handleACLPolicySet)
	mux.HandleFunc("POST /v1/acl/policy/{name}", s.handleACLPolicySet)
	mux.HandleFunc("DELETE /v1/acl/policy/{name}", s.handleACLPolicyDelete)
	mux.HandleFunc("GET /v1/acl/tokens", s.handleACLTokens)
	mux.HandleFunc("PUT /v1/acl/token", s.handleACLTokenCreate)
	mux.HandleFunc("POST /v1/acl/token", s.handleACLTokenCreate)
	mux.HandleFunc("GET /v1/acl/token/self", s.handleACLTokenSelf)
	mux.HandleFunc("GET /v1/acl/token/{accessor}", s.handleACLToken)
	mux.HandleFunc("DELETE /v1/acl/token/{accessor}", s.handleACLTokenDelete)
}

func (s *httpAPI) handleACLBootstrap(w http.ResponseWriter, r *http.Request) {
	tok, err := s.admin.bootstrap()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tok.CreateIndex, tok)
}

func (s *httpAPI) handleACLPolicies(w http.ResponseWriter, r *http.Request) {
	if !s.acls.enabled {
		writeError(w, badRequest{ErrACLDisabled})
		return
	}
	idx := s.store.Index()
	ps, err := s.store.ACLPolicies()
	if err != nil {
		writeError(w, err)
		return
	}
	out := []structs.ACLPolicyListStub{}
	for _, p := range ps {
		out = append(out, structs.ACLPolicyListStub{Name: p.Name, Description: p.Description, CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex})
	}
	writeJSON(w, http.StatusOK, idx, out)
}

// handleACLPolicy is a policy, for a management token or one that names it.
func (s *httpAPI) handleACLPolicy(w http.ResponseWriter, r *http.Request) {
	if !s.acls.enabled {
		writeError(w, badRequest{ErrACLDisabled})
		return
	}
	name := r.PathValue("name")
	a, tok := aclFrom(r.Context())
	if !a.IsManagement() && (tok == nil || !slices.Contains(tok.Policies, name)) {
		writeError(w, fmt.Errorf("%w: reading policy %q needs %s or a token that names the policy", ErrPermissionDenied, name, acl.NeedManagement))
		return
	}
	idx := s.store.Index()
	p, err := s.store.ACLPolicy(name)
	if err != nil {
		writeError(w, err)
		return
	}
	if p == nil {
		writeError(w, fmt.Errorf("ACL policy %q: %w", name, ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, idx, p)
}

func (s *httpAPI) handleACLPolicySet(w http.ResponseWriter, r *http.Request) {
	var p structs.ACLPolicy
	if err := decodeJSON(r, 2*acl.MaxPolicySize, "ACL policy JSON", &p, false); err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("name")
	if p.Name != "" && p.Name != name {
		writeError(w, badRequest{fmt.Errorf("the policy's Name %q is not the one in the path, %q", p.Name, name)})
		return
	}
	p.Name = name
	stored, idx, err := s.admin.setPolicy(p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, stored)
}

func (s *httpAPI) handleACLPolicyDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.admin.deletePolicy(r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), map[string]string{"Deleted": r.PathValue("name")})
}

func (s *httpAPI) handleACLTokens(w http.ResponseWriter, r *http.Request) {
	if !s.acls.enabled {
		writeError(w, badRequest{ErrACLDisabled})
		return
	}
	idx := s.store.Index()
	toks, err := s.store.ACLTokens()
	if err != nil {
		writeError(w, err)
		return
	}
	out := []structs.ACLToken{}
	for _, t := range toks {
		out = append(out, t.Public())
	}
	writeJSON(w, http.StatusOK, idx, out)
}

func (s *httpAPI) handleACLTokenCreate(w http.ResponseWriter, r *http.Request) {
	var req structs.ACLTokenRequest
	if err := decodeJSON(r, maxSmallBody, "ACL token request", &req, true); err != nil {
		writeError(w, err)
		return
	}
	tok, err := s.admin.createToken(req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tok.CreateIndex, tok)
}

// handleACLTokenSelf is the request's own token.
func (s *httpAPI) handleACLTokenSelf(w http.ResponseWriter, r *http.Request) {
	if !s.acls.enabled {
		writeError(w, badRequest{ErrACLDisabled})
		return
	}
	_, tok := aclFrom(r.Context())
	writeJSON(w, http.StatusOK, s.store.Index(), tok.Public())
}

func (s *httpAPI) handleACLToken(w http.ResponseWriter, r *http.Request) {
	if !s.acls.enabled {
		writeError(w, badRequest{ErrACLDisabled})
		return
	}
	idx := s.store.Index()
	tok, err := s.store.ACLToken(r.PathValue("accessor"))
	if err != nil {
		writeError(w, err)
		return
	}
	if tok == nil {
		writeError(w, fmt.Errorf("ACL token %s: %w", r.PathValue("accessor"), ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, idx, tok.Public())
}

func (s *httpAPI) handleACLTokenDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.admin.deleteToken(r.PathValue("accessor")); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), map[string]string{"Deleted": r.PathValue("accessor")})
}
