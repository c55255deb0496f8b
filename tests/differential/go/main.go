// Echo backend for the portcullis differential tests: Go net/http, stdlib only.
//
// Reports the method after a gorilla/handlers-style HTTPMethodOverrideHandler,
// r.URL.Path (decoded), r.Host and the X-Auth-Subject header. The handler is
// installed directly on the http.Server (no ServeMux), so unclean paths such
// as "/a/../b" are reported as received instead of being redirected.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
)

const name = "go"

// methodOverride mirrors gorilla/handlers.HTTPMethodOverrideHandler: on POST,
// the `_method` form value (query or body), else X-HTTP-Method-Override, when
// it is exactly PUT, PATCH or DELETE.
func methodOverride(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			om := r.FormValue("_method")
			if om == "" {
				om = r.Header.Get("X-HTTP-Method-Override")
			}
			if om == http.MethodPut || om == http.MethodPatch || om == http.MethodDelete {
				r.Method = om
			}
		}
		h.ServeHTTP(w, r)
	})
}

func echo(w http.ResponseWriter, r *http.Request) {
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	var user *string
	if u := r.Header.Get("X-Auth-Subject"); u != "" {
		user = &u
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Diff-Backend", name)
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]any{
		"backend": name,
		"method":  r.Method,
		"path":    r.URL.Path,
		"host":    r.Host,
		"user":    user,
		"headers": headers,
	})
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// The socket is listening: connections are queued from here on.
	fmt.Fprintf(os.Stdout, "LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: methodOverride(http.HandlerFunc(echo)), ErrorLog: log.New(os.Stderr, "goecho: ", log.LstdFlags)}
	log.Fatal(srv.Serve(ln))
}
