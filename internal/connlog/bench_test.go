package connlog

import "testing"

// BenchmarkParse parses the first record of each sample file, a typical
// IPv4 TCP line of its format, with the default Options (time.Now, Local).
func BenchmarkParse(b *testing.B) {
	for _, f := range Formats {
		b.Run(string(f), func(b *testing.B) {
			line := sampleLines(b, f)[1]
			p := newTestParser(b, f, Options{})
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Parse(line); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkParseSamples cycles through every line of each sample file:
// edge cases, IPv6, skipped and broken lines, whose errors allocate.
func BenchmarkParseSamples(b *testing.B) {
	for _, f := range Formats {
		b.Run(string(f), func(b *testing.B) {
			lines := sampleLines(b, f)
			var size int
			for _, l := range lines {
				size += len(l)
			}
			p := newTestParser(b, f, Options{})
			b.SetBytes(int64(size / len(lines)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Parse(lines[i%len(lines)])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
