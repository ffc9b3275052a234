package criminalip

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

type fixtureBody struct {
	name string
	body []byte
}

// fixtureBodies returns every report fixture listed in the shared manifest,
// including the error and malformed ones, sorted by file name.
func fixtureBodies(tb testing.TB) []fixtureBody {
	tb.Helper()
	dir := fixtures.Dir(tb)
	var out []fixtureBody
	for _, e := range fixtures.Manifest(tb) {
		b, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, fixtureBody{e.File, b})
	}
	if len(out) == 0 {
		tb.Fatal("no fixtures in the manifest")
	}
	return out
}

// BenchmarkDecode decodes each fixture. The "all" case decodes every fixture
// once per iteration (about 55 KB), which is the figure to compare.
func BenchmarkDecode(b *testing.B) {
	benchmarkDecode(b, Decode)
}

// BenchmarkDecodeReference is the same over the original map-based decoder.
func BenchmarkDecodeReference(b *testing.B) {
	benchmarkDecode(b, decodeReference)
}

func benchmarkDecode(b *testing.B, decode func([]byte) (*Report, error)) {
	bodies := fixtureBodies(b)
	total := 0
	for _, f := range bodies {
		total += len(f.body)
	}
	b.Run("all", func(b *testing.B) {
		b.SetBytes(int64(total))
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range bodies {
				_, _ = decode(f.body)
			}
		}
	})
	for _, f := range bodies {
		b.Run(f.name, func(b *testing.B) {
			b.SetBytes(int64(len(f.body)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = decode(f.body)
			}
		})
	}
}
