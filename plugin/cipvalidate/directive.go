package cipvalidate

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/coredns/coredns/core/dnsserver"
)

// directiveMu serialises RegisterDirective calls with each other; callers
// must still call it before any server starts (see dnsserver.SetDirectives).
var directiveMu sync.Mutex

// RegisterDirective inserts "cipvalidate" into dnsserver.Directives
// immediately before "cache". An external plugin is not in CoreDNS's generated
// directive list, so the binary that compiles it in (cmd/coredns-cip) must call
// this once, before coremain.Run or caddy.Start.
//
// The position matters: plugins run in directive order, and a plugin sees the
// responses of every plugin after it. Right before cache, cipvalidate sees every
// answer, cache hits included, so a cached answer that points at infrastructure
// found suspicious later is still caught. After acl and rewrite, it sees the
// query as the server will answer it.
//
// Calling it again leaves a single entry. It panics if "cache" is missing from
// the directive list, which means the CoreDNS version no longer matches ours.
func RegisterDirective() {
	directiveMu.Lock()
	defer directiveMu.Unlock()

	dirs, err := InsertBefore(dnsserver.Directives, "cipvalidate", "cache")
	if err != nil {
		panic(fmt.Sprintf("cipvalidate: cannot register directive: %v", err))
	}
	if err := dnsserver.SetDirectives(dirs); err != nil {
		panic(fmt.Sprintf("cipvalidate: cannot register directive: %v", err))
	}
}

// InsertBefore returns a copy of dirs in which name sits immediately before
// the directive before. If name is already in dirs it is moved there, so the
// result holds it exactly once. dirs itself is never modified. It fails when
// before is not in dirs.
func InsertBefore(dirs []string, name, before string) ([]string, error) {
	if name == "" || before == "" {
		return nil, errors.New("directive names must not be empty")
	}
	if name == before {
		return nil, fmt.Errorf("cannot insert %q before itself", name)
	}
	out := slices.DeleteFunc(slices.Clone(dirs), func(d string) bool { return d == name })
	i := slices.Index(out, before)
	if i < 0 {
		return nil, fmt.Errorf("directive %q not found", before)
	}
	return slices.Insert(out, i, name), nil
}
