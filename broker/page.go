package broker

import (
	"encoding/base64"
	"strings"
)

// Page sizes of ListPage, after AIP-158: a size of 0 takes the default,
// one above the maximum is read as the maximum.
const (
	DefaultPageSize = 500
	MaxPageSize     = 1000
)

// LeasePage is one page of the lease table.
type LeasePage struct {
	Leases []Lease
	// Next is the token of the next page; empty on the last.
	Next string
}

// tokenPrefix versions the page token, so a token from another release is
// refused rather than misread.
const tokenPrefix = "1\x00"

// ListPage returns the live leases of namespace (all when empty) in
// namespace, name and id order, a page at a time. token is empty for the
// first page, else the Next of the previous page for the same namespace.
// A lease that appears or ends between two pages may or may not be
// listed; every other live lease is listed exactly once.
func (b *Broker) ListPage(namespace string, size int, token string) (LeasePage, error) {
	switch {
	case size < 0:
		return LeasePage{}, fieldErr("page_size", "must not be negative, got %d", size)
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	var cursor leaseKey
	first := token == ""
	if !first {
		var err error
		if cursor, err = parseToken(namespace, token); err != nil {
			return LeasePage{}, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	leases, more := b.pageAfter(namespace, cursor, first, size)
	page := LeasePage{Leases: leases}
	if more && len(leases) > 0 {
		page.Next = makeToken(namespace, keyOfLease(&leases[len(leases)-1]))
	}
	return page, nil
}

func makeToken(namespace string, k leaseKey) string {
	raw := tokenPrefix + strings.Join([]string{namespace, k.Namespace, k.Name, k.ID}, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parseToken(namespace, token string) (leaseKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	rest, ok := strings.CutPrefix(string(raw), tokenPrefix)
	parts := strings.Split(rest, "\x00")
	if err != nil || !ok || len(parts) != 4 {
		return leaseKey{}, fieldErr("page_token", "not a token this daemon returned")
	}
	if parts[0] != namespace {
		return leaseKey{}, fieldErr("page_token", "was returned for namespace %q, not %q", parts[0], namespace)
	}
	return leaseKey{Namespace: parts[1], Name: parts[2], ID: parts[3]}, nil
}
