package main

import (
	"io"
	"os"
	"sort"
)

func main() {
	report(os.Stdout, os.Environ(), os.Getenv, os.ReadFile)
}

// report writes env sorted, one KEY=VALUE a line, then the file ECHO_FILE
// names (or why it cannot be read). Under WAGI (REQUEST_METHOD set) it
// first writes the CGI header.
func report(w io.Writer, env []string, getenv func(string) string, readFile func(string) ([]byte, error)) {
	if getenv("REQUEST_METHOD") != "" {
		io.WriteString(w, "Content-Type: text/plain\n\n")
	}
	env = append([]string(nil), env...)
	sort.Strings(env)
	for _, kv := range env {
		io.WriteString(w, kv+"\n")
	}
	if name := getenv("ECHO_FILE"); name != "" {
		b, err := readFile(name)
		if err != nil {
			io.WriteString(w, "--- "+name+": "+err.Error()+"\n")
			return
		}
		io.WriteString(w, "--- "+name+"\n"+string(b))
	}
}
