package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator/acl"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// The `strata acl` commands, as Nomad's `nomad acl`.

func runACLBootstrap(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl bootstrap")
	addr := addressFlag(fs, env)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("acl bootstrap takes no arguments")
	}
	tok, err := client(*addr).ACLBootstrap(ctx)
	if err != nil {
		return err
	}
	printToken(env, tok)
	fmt.Fprintln(env.Stdout, "\nThe Secret ID is shown only now: keep it (STRATA_TOKEN or -token).")
	return nil
}

// printToken writes a token as Nomad's CLI does.
func printToken(env *Env, t *structs.ACLToken) {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 1, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "Accessor ID\t= %s\n", t.AccessorID)
	if t.SecretID != "" {
		fmt.Fprintf(tw, "Secret ID\t= %s\n", t.SecretID)
	}
	fmt.Fprintf(tw, "Name\t= %s\n", orNone(t.Name))
	fmt.Fprintf(tw, "Type\t= %s\n", t.Type)
	fmt.Fprintf(tw, "Create Time\t= %s\n", time.Unix(0, t.CreateTime).In(env.location()).Format(time.RFC3339))
	expiry := "<none>"
	if t.ExpirationTime != 0 {
		expiry = time.Unix(0, t.ExpirationTime).In(env.location()).Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "Expiry Time\t= %s\n", expiry)
	fmt.Fprintf(tw, "Create Index\t= %d\n", t.CreateIndex)
	fmt.Fprintf(tw, "Modify Index\t= %d\n", t.ModifyIndex)
	policies := "n/a"
	if t.Type == structs.ACLClientToken {
		policies = strings.Join(t.Policies, ", ")
	}
	fmt.Fprintf(tw, "Policies\t= %s\n", policies)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func runACLPolicyApply(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl policy apply")
	addr := addressFlag(fs, env)
	desc := fs.String("description", "", "what the policy is for")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("usage: strata acl policy apply [-description D] NAME FILE.hcl")
	}
	name, path := pos[0], pos[1]
	src, err := readPolicy(path)
	if err != nil {
		return err
	}
	// Checked here first, so a problem shows its source line and caret.
	if _, err := acl.Parse(path, src); err != nil {
		var ds spec.Diagnostics
		if errors.As(err, &ds) {
			ds.Format(env.Stderr, map[string][]byte{path: src}, false)
			return &exitError{code: 1, msg: fmt.Sprintf("%s is not a valid ACL policy (%d problem(s))", path, len(ds))}
		}
		return err
	}
	p, err := client(*addr).ApplyACLPolicy(ctx, structs.ACLPolicy{Name: name, Description: *desc, Rules: string(src)})
	if err != nil {
		return fmt.Errorf("applying policy %q: %w", name, err)
	}
	fmt.Fprintf(env.Stdout, "Successfully wrote %q ACL policy (modify index %d)\n", p.Name, p.ModifyIndex)
	return nil
}

// readPolicy reads a policy file, at most one byte more than a policy may
// be (acl.Parse refuses what is larger, with a message).
func readPolicy(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, acl.MaxPolicySize+1))
}

func runACLPolicyList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl policy list")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ps, err := client(*addr).ACLPolicies(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(env.Stdout, "No policies found")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "Name\tDescription")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, orNone(p.Description))
	}
	return nil
}

func runACLPolicyInfo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl policy info")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	arg, err := parseOne(fs, args, "usage: strata acl policy info NAME")
	if err != nil {
		return err
	}
	p, err := client(*addr).ACLPolicy(ctx, arg)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, p)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Name\t= %s\n", p.Name)
	fmt.Fprintf(tw, "Description\t= %s\n", orNone(p.Description))
	fmt.Fprintf(tw, "Create Index\t= %d\n", p.CreateIndex)
	fmt.Fprintf(tw, "Modify Index\t= %d\n", p.ModifyIndex)
	tw.Flush()
	fmt.Fprintf(env.Stdout, "\nRules\n\n%s\n", strings.TrimRight(p.Rules, "\n"))
	return nil
}

func runACLPolicyDelete(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl policy delete")
	addr := addressFlag(fs, env)
	arg, err := parseOne(fs, args, "usage: strata acl policy delete NAME")
	if err != nil {
		return err
	}
	if err := client(*addr).DeleteACLPolicy(ctx, arg); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Successfully deleted %q ACL policy\n", arg)
	return nil
}

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runACLTokenCreate(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl token create")
	addr := addressFlag(fs, env)
	name := fs.String("name", "", "a name for the token")
	typ := fs.String("type", structs.ACLClientToken, "client (with -policy) or management")
	ttl := fs.Duration("ttl", 0, "how long the token is valid, e.g. 8h (1m to 24h; 0: it never expires)")
	var policies stringsFlag
	fs.Var(&policies, "policy", "a policy of the token, repeatable (client tokens)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("acl token create takes no arguments, got %q", pos)
	}
	if *ttl < 0 {
		return usageError("-ttl must not be negative, got %s", *ttl)
	}
	req := structs.ACLTokenRequest{Name: *name, Type: *typ, Policies: policies}
	if *ttl > 0 {
		req.ExpirationTTL = ttl.String()
	}
	tok, err := client(*addr).CreateACLToken(ctx, req)
	if err != nil {
		return err
	}
	printToken(env, tok)
	return nil
}

func runACLTokenList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl token list")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	toks, err := client(*addr).ACLTokens(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, toks)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "Name\tType\tAccessor ID\tPolicies\tExpired")
	now := time.Now().UnixNano()
	for _, t := range toks {
		expired := t.ExpirationTime != 0 && now >= t.ExpirationTime
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", orNone(t.Name), t.Type, t.AccessorID, strings.Join(t.Policies, ","), expired)
	}
	return nil
}

func runACLTokenInfo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl token info")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	arg, err := parseOne(fs, args, "usage: strata acl token info ACCESSOR")
	if err != nil {
		return err
	}
	tok, err := client(*addr).ACLToken(ctx, arg)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, tok)
	}
	printToken(env, tok)
	return nil
}

func runACLTokenSelf(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl token self")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	tok, err := client(*addr).ACLTokenSelf(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, tok)
	}
	printToken(env, tok)
	return nil
}

func runACLTokenDelete(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "acl token delete")
	addr := addressFlag(fs, env)
	arg, err := parseOne(fs, args, "usage: strata acl token delete ACCESSOR")
	if err != nil {
		return err
	}
	if err := client(*addr).DeleteACLToken(ctx, arg); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Token %s successfully deleted\n", arg)
	return nil
}
