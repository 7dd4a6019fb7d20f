package main

import (
	"io"
	"os"
)

func main() {
	respond(os.Stdout, os.Getenv("PATH_INFO"))
}

// respond writes the WAGI response for a request whose PATH_INFO is pathInfo.
func respond(w io.Writer, pathInfo string) {
	if pathInfo == "" {
		pathInfo = "/"
	}
	io.WriteString(w, "Content-Type: text/plain\n\nhello from "+pathInfo+"\n")
}
