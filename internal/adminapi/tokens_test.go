package adminapi

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTokens writes a tokens file with mode and returns its path.
func writeTokens(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func TestLoadTokens(t *testing.T) {
	const siemSecret = "a-siem-token-of-some-length"
	path := writeTokens(t, `# name    role      secret
siem      events    `+HashSecret(siemSecret)+`

paloalto  read      sha256:`+strings.ToUpper(HashSecret("fw-token")[7:])+`  rate=0.5
	alice	operator	a-plain-token-long-enough burst=7   # tabs and spaces
`, 0o600)
	toks, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 {
		t.Fatalf("%d tokens, want 3: %+v", len(toks), toks)
	}
	want := []Token{
		{Name: "siem", Role: RoleEvents, Hash: sha256.Sum256([]byte(siemSecret))},
		{Name: "paloalto", Role: RoleRead, Hash: sha256.Sum256([]byte("fw-token")), Rate: 0.5},
		{Name: "alice", Role: RoleOperator, Hash: sha256.Sum256([]byte("a-plain-token-long-enough")), Burst: 7},
	}
	for i := range want {
		if toks[i] != want[i] {
			t.Errorf("token %d = %+v, want %+v", i, toks[i], want[i])
		}
	}
}

// Every mistake names the file, the line and the field, and no error
// shows a secret.
func TestLoadTokensErrors(t *testing.T) {
	const secret = "a-plain-token-long-enough"
	hash := HashSecret(secret)
	for _, tc := range []struct {
		name, content string
		want          string
	}{
		{"too few fields", "siem events\n", ":1: 2 field(s); want NAME ROLE SECRET"},
		{"unknown role", "# c\nsiem admin " + hash + "\n", `:2: role "admin" is not events, read or operator`},
		{"bad name", "si/em read " + hash, `:1: name "si/em" may hold only letters`},
		{"long name", strings.Repeat("n", 65) + " read " + hash, ":1: name"},
		{"short hash", "siem read sha256:abcd", ":1: secret sha256: must be followed by 64 hex digits"},
		{"bad hex", "siem read sha256:" + strings.Repeat("z", 64), ":1: secret sha256:"},
		{"short plain token", "siem read short-token", ":1: secret: a token written in the file needs at least 16 characters"},
		{"control character", "siem read " + secret + "\x01", ":1: secret: the token may hold only visible ASCII"},
		{"duplicate name", "siem read " + hash + "\nsiem events " + HashSecret("other-token-0123456") + "\n", `:2: name "siem" is already on line 1`},
		{"duplicate token", "siem read " + hash + "\nfw read " + secret + "\n", `:2: the token of "fw" is already on line 1`},
		{"bad rate", "siem read " + hash + " rate=0", `:1: rate="0"`},
		{"rate twice", "siem read " + hash + " rate=1 rate=2", `:1: rate="2"`},
		{"bad burst", "siem read " + hash + " burst=-1", `:1: burst="-1"`},
		{"unknown field", "siem read " + hash + " colour=red", `:1: unknown field "colour=red"`},
		{"empty", "# nothing yet\n\n", " holds no token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTokens(t, tc.content, 0o600)
			_, err := LoadTokens(path)
			if err == nil || !strings.HasPrefix(err.Error(), "events: tokens "+path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadTokens: %v, want an error naming %s and %q", err, path, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// A tokens file every user may read must hold hashes only; one every user
// may write is refused whatever it holds.
func TestLoadTokensPermissions(t *testing.T) {
	hashed := "siem events " + HashSecret("x") + "\n"
	plain := hashed + "# the next one is plain\nalice operator a-plain-token-long-enough\n"
	for _, tc := range []struct {
		content string
		mode    os.FileMode
		want    string // "" accepted
	}{
		{plain, 0o600, ""},
		{plain, 0o640, ""},
		{plain, 0o644, "is readable by every user (mode 0644) and line 3 holds a token itself"},
		{hashed, 0o644, ""},
		{hashed, 0o666, "is writable by every user (mode 0666)"},
	} {
		path := writeTokens(t, tc.content, tc.mode)
		_, err := LoadTokens(path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("mode %04o: %v", tc.mode, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path)):
			t.Errorf("mode %04o: %v, want an error naming the file and %q", tc.mode, err, tc.want)
		}
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := LoadTokens(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

func TestAccessFilesLoad(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("legacy-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := writeTokens(t, "siem events "+HashSecret("siem-token")+"\n", 0o600)
	a, err := AccessFiles{TokenFile: tokenFile, Tokens: tokens}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tokens) != 2 || a.Tokens[1] != NewToken(LegacyTokenName, RoleOperator, "legacy-token") || a.TLS != nil {
		t.Errorf("Load = %+v, want siem and token_file's operator token", a)
	}
	clash := writeTokens(t, "token_file read "+HashSecret("x")+"\n", 0o600)
	same := writeTokens(t, "ops operator "+HashSecret("legacy-token")+"\n", 0o600)
	for _, tc := range []struct {
		files AccessFiles
		want  string
	}{
		{AccessFiles{TokenFile: tokenFile, Tokens: clash}, `names a token "token_file"`},
		{AccessFiles{TokenFile: tokenFile, Tokens: same}, `token_file holds the token of "ops"`},
		{AccessFiles{ClientCA: "ca.pem"}, "client_ca needs tls CERT KEY"},
		{AccessFiles{Tokens: filepath.Join(dir, "missing")}, "events: tokens: "},
		{AccessFiles{Cert: filepath.Join(dir, "missing"), Key: "k"}, "events: tls "},
	} {
		if _, err := tc.files.Load(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "events: ") {
			t.Errorf("Load(%+v) = %v, want %q", tc.files, err, tc.want)
		}
	}
}

func TestNewSecretAndLine(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if a == b || len(a) != 43 || CheckSecret(a) != nil || strings.ContainsAny(a, "+/=") {
		t.Errorf("NewSecret = %q, %q; want two different 43-character URL-safe tokens", a, b)
	}
	line := TokenLine("siem", RoleEvents, a)
	path := writeTokens(t, line+"\n", 0o644) // hashes only: may be world-readable
	toks, err := LoadTokens(path)
	if err != nil || len(toks) != 1 || toks[0] != NewToken("siem", RoleEvents, a) {
		t.Errorf("the line %q loads as %+v, %v", line, toks, err)
	}
	if strings.Contains(line, a) {
		t.Errorf("the line %q holds the token", line)
	}
}
