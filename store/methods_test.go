package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// TestMethodNumbers reads methods.go: every method constant has a number no
// other has, a name and a handler, and the tables name no other method.
func TestMethodNumbers(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "methods.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	byNumber := map[uint64]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "method") {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: give the number as a literal, so it can be read here", name.Name)
				}
				n, err := strconv.ParseUint(lit.Value, 0, 8)
				if err != nil {
					t.Fatalf("%s = %s: %v", name.Name, lit.Value, err)
				}
				if other, dup := byNumber[n]; dup {
					t.Errorf("%s and %s share number %d", name.Name, other, n)
				}
				byNumber[n] = name.Name
			}
		}
	}
	handlers := (&Store{}).peerHandlers()
	if len(byNumber) == 0 || len(handlers) != len(byNumber) || len(methodNames) != len(byNumber) {
		t.Fatalf("%d method constants, %d handlers, %d names", len(byNumber), len(handlers), len(methodNames))
	}
	for n, name := range byNumber {
		if handlers[uint8(n)] == nil {
			t.Errorf("%s (%d) has no handler in peerHandlers", name, n)
		}
		if methodNames[uint8(n)] == "" {
			t.Errorf("%s (%d) has no name in methodNames", name, n)
		}
	}
}
