package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/template"
)

// outputFlags are -json and -t, which every read command takes (Nomad's
// flags): the API's answer as JSON, or formatted with a Go template
// (text/template) instead of the layout for people. The template sees
// the answer as its JSON decodes, so its fields have the names -json
// shows ({{.ID}}, {{range .Allocations}}...), and numbers print as
// they are written (no 1.7e+18).
type outputFlags struct {
	json bool
	tmpl *templateFlag
}

// templateFlag is -t: parsed as it is set, so a malformed template is a
// usage error before any request.
type templateFlag struct {
	src string
	t   *template.Template
}

func (f *templateFlag) String() string { return f.src }

func (f *templateFlag) Set(s string) error {
	t, err := template.New("-t").Option("missingkey=error").Parse(s)
	if err != nil {
		return err
	}
	f.src, f.t = s, t
	return nil
}

// addOutputFlags adds -json and -t.
func addOutputFlags(fs *flag.FlagSet) *outputFlags {
	o := &outputFlags{tmpl: &templateFlag{}}
	fs.BoolVar(&o.json, "json", false, "print the API's answer as JSON")
	fs.Var(o.tmpl, "t", "format the API's answer with a Go template (text/template), fields named as -json shows them, e.g. '{{range .}}{{.ID}} {{end}}'")
	return o
}

// checkOutputFlags refuses -json with -t (parse calls it).
func checkOutputFlags(fs *flag.FlagSet) error {
	j, t := fs.Lookup("json"), fs.Lookup("t")
	if j == nil || t == nil {
		return nil
	}
	if j.Value.String() == "true" && t.Value.String() != "" {
		return usageError("-json and -t cannot be used together")
	}
	return nil
}

// raw reports whether the answer is printed as data (-json or -t).
func (o *outputFlags) raw() bool { return o != nil && (o.json || o.tmpl.t != nil) }

// write prints v as -json or -t asks; raw must be true.
func (o *outputFlags) write(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	if o.json {
		_, err := fmt.Fprintf(w, "%s\n", b)
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var data any
	if err := dec.Decode(&data); err != nil {
		return err
	}
	var out strings.Builder
	if err := o.tmpl.t.Execute(&out, data); err != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("-t: %v", err)}
	}
	s := out.String()
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, err = io.WriteString(w, s)
	return err
}
