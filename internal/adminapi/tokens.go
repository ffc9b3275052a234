package adminapi

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Role is what a token may do. Roles are not a chain: an events token
// cannot read, a read token cannot post; operator may do everything.
type Role string

// The roles of the tokens file.
const (
	// RoleEvents posts events and connection records (an EDR, a SIEM, a
	// firewall's log shipper) and reads back the events it posted.
	RoleEvents Role = "events"
	// RoleRead reads everything (GET), the EDL included: a dashboard, a
	// firewall polling the blocklist. It is the only role the EDL takes as
	// ?token=, since a URL ends up in firewall configs and proxy logs.
	RoleRead Role = "read"
	// RoleOperator does everything: unblock, allow, untag, besides what
	// events and read do. It may name the person it acts for
	// (on_behalf_of).
	RoleOperator Role = "operator"
)

// roles in the order messages list them.
var roles = []Role{RoleEvents, RoleRead, RoleOperator}

// LegacyTokenName is the name, and so the audit actor, of the one token of
// `events ... token_file PATH`, which is an operator token.
const LegacyTokenName = "token_file"

// Limits of the tokens file. A token written in the file (not its hash)
// must be long enough not to be guessed within the failed-request limit;
// `coredns-cip token new` makes 43 characters (256 bits).
const (
	minPlainToken = 16
	maxTokenName  = 64
	maxTokenLimit = 100_000
	maxTokensFile = 1 << 20
)

// Token is a named bearer token with a role. Only the SHA-256 of the
// secret is kept, so a Token can be logged or shown without leaking it.
type Token struct {
	Name string
	Role Role
	Hash [sha256.Size]byte
	// Rate is the token's requests a second and Burst how many it may send
	// at once; 0 means Limits.TokenRate and Limits.TokenBurst.
	Rate  float64
	Burst int
}

// NewToken returns the Token of secret, which the caller has checked.
func NewToken(name string, role Role, secret string) Token {
	return Token{Name: name, Role: role, Hash: sha256.Sum256([]byte(secret))}
}

// NewSecret returns a new random token: 32 bytes from crypto/rand,
// base64url without padding (43 characters, safe in a header and a URL).
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret is the SECRET field of a tokens file line for secret:
// "sha256:" and 64 lowercase hex digits.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(h[:])
}

// TokenLine is the tokens file line of a token named name with role role
// and the given secret, hashed.
func TokenLine(name string, role Role, secret string) string {
	return name + " " + string(role) + " " + HashSecret(secret)
}

// CheckSecret says what is wrong with secret as a bearer token: it must be
// visible ASCII without spaces, since it travels in a header.
func CheckSecret(secret string) error {
	if secret == "" {
		return errors.New("the token is empty")
	}
	for _, r := range secret {
		if r <= ' ' || r >= 0x7f {
			return errors.New("the token may hold only visible ASCII characters, no spaces")
		}
	}
	return nil
}

// CheckTokenName says what is wrong with name as a token's name: it is the
// audit actor, so letters, digits and . _ - @ only, at most 64.
func CheckTokenName(name string) error {
	if name == "" || len(name) > maxTokenName {
		return fmt.Errorf("name %q must have 1 to %d characters", name, maxTokenName)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return fmt.Errorf("name %q may hold only letters, digits, '.', '_', '-' and '@'", name)
		}
	}
	return nil
}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range roles {
		if s == string(r) {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q is not events, read or operator", s)
}

// LoadTokens reads a tokens file (`events ... tokens PATH`). Each line is
//
//	NAME ROLE SECRET [rate=N] [burst=N]
//
// separated by spaces or tabs; a # starts a comment where a field would
// start, and blank lines are skipped. SECRET is sha256:HEX, the SHA-256 of the token in 64 hex
// digits (preferred: the file then holds nothing a caller could send), or
// the token itself. rate is the token's requests a second, burst how many
// it may send at once (default twice the rate).
//
// It refuses a file that holds no token, repeats a name or a token, is
// writable by every user (anyone could add an operator), or holds a plain
// token while readable by every user. Errors start with "events: tokens "
// and name the file, the line and the field; they never show a secret.
func LoadTokens(path string) ([]Token, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("events: tokens: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("events: tokens %s is not a regular file", path)
	}
	if info.Mode().Perm()&0o002 != 0 {
		return nil, fmt.Errorf("events: tokens %s is writable by every user (mode %04o), who could add an operator token: chmod o-w it", path, info.Mode().Perm())
	}
	if info.Size() > maxTokensFile {
		return nil, fmt.Errorf("events: tokens %s is larger than %d bytes", path, maxTokensFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("events: tokens: %w", err)
	}
	toks, plainLine, err := parseTokens(path, data)
	if err != nil {
		return nil, err
	}
	if plainLine > 0 && info.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("events: tokens %s is readable by every user (mode %04o) and line %d holds a token itself, not its hash: chmod o-r the file, or write sha256:HEX instead (coredns-cip token hash)",
			path, info.Mode().Perm(), plainLine)
	}
	return toks, nil
}

// parseTokens reads the content of the tokens file path. plainLine is the
// first line that holds a token rather than its hash, 0 if none.
func parseTokens(path string, data []byte) (toks []Token, plainLine int, err error) {
	at := func(n int, err error) error { return fmt.Errorf("events: tokens %s:%d: %w", path, n, err) }
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxTokensFile)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if i := slices.IndexFunc(fields, func(f string) bool { return strings.HasPrefix(f, "#") }); i >= 0 {
			fields = fields[:i] // a comment
		}
		if len(fields) == 0 {
			continue
		}
		tok, plain, err := parseTokenLine(fields)
		if err != nil {
			return nil, 0, at(n, err)
		}
		if first, dup := names[tok.Name]; dup {
			return nil, 0, at(n, fmt.Errorf("name %q is already on line %d", tok.Name, first))
		}
		if first, dup := hashes[tok.Hash]; dup {
			return nil, 0, at(n, fmt.Errorf("the token of %q is already on line %d: each client gets its own", tok.Name, first))
		}
		if plain && plainLine == 0 {
			plainLine = n
		}
		names[tok.Name], hashes[tok.Hash] = n, n
		toks = append(toks, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("events: tokens %s: %w", path, err)
	}
	if len(toks) == 0 {
		return nil, 0, fmt.Errorf("events: tokens %s holds no token (lines of NAME ROLE SECRET)", path)
	}
	return toks, plainLine, nil
}

// parseTokenLine reads the fields of one line; plain says the secret was
// the token itself.
func parseTokenLine(fields []string) (tok Token, plain bool, err error) {
	if len(fields) < 3 {
		return tok, false, fmt.Errorf("%d field(s); want NAME ROLE SECRET [rate=N] [burst=N]", len(fields))
	}
	if err := CheckTokenName(fields[0]); err != nil {
		return tok, false, err
	}
	tok.Name = fields[0]
	if tok.Role, err = ParseRole(fields[1]); err != nil {
		return tok, false, err
	}
	secret := fields[2]
	if hexHash, ok := strings.CutPrefix(secret, "sha256:"); ok {
		h, err := hex.DecodeString(hexHash)
		if err != nil || len(h) != sha256.Size {
			return tok, false, errors.New("secret sha256: must be followed by 64 hex digits (coredns-cip token hash)")
		}
		copy(tok.Hash[:], h)
	} else {
		if err := CheckSecret(secret); err != nil {
			return tok, false, fmt.Errorf("secret: %w", err)
		}
		if len(secret) < minPlainToken {
			return tok, false, fmt.Errorf("secret: a token written in the file needs at least %d characters; make one with coredns-cip token new", minPlainToken)
		}
		tok.Hash, plain = sha256.Sum256([]byte(secret)), true
	}
	for _, f := range fields[3:] {
		if err := tok.setLimit(f); err != nil {
			return tok, false, err
		}
	}
	return tok, plain, nil
}

// setLimit reads a rate=N or burst=N field.
func (tok *Token) setLimit(field string) error {
	key, val, _ := strings.Cut(field, "=")
	switch key {
	case "rate":
		r, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(r) || r <= 0 || r > maxTokenLimit || tok.Rate != 0 {
			return fmt.Errorf("rate=%q: want one rate=N, requests a second, above 0 and at most %d", val, maxTokenLimit)
		}
		tok.Rate = r
	case "burst":
		b, err := strconv.Atoi(val)
		if err != nil || b < 1 || b > maxTokenLimit || tok.Burst != 0 {
			return fmt.Errorf("burst=%q: want one burst=N, from 1 to %d", val, maxTokenLimit)
		}
		tok.Burst = b
	default:
		return fmt.Errorf("unknown field %q; after the secret come rate=N and burst=N", field)
	}
	return nil
}
