package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// Every example of the API commands in the root README runs as written,
// each against a fresh fake API: a renamed flag or command fails here.
func TestReadmeAPICommands(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var ran int
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		args := shellWords(sc.Text())
		if len(args) < 2 || args[0] != "coredns-cip" {
			continue
		}
		switch args[1] {
		case "decisions", "events", "allow", "clients":
		default:
			continue
		}
		api, base := newContractAPI(t)
		if code, _, errOut := api.cli(t, base, args[1:]...); code != 0 {
			t.Errorf("README: %s: exit %d: %s", sc.Text(), code, errOut)
		}
		ran++
	}
	if ran < 10 {
		t.Errorf("ran %d commands of the README, want its examples of decisions, events, allow and clients", ran)
	}
}

// shellWords splits a README line as sh would for the examples: words,
// "double-quoted" words, a # comment, and a > redirection dropped.
func shellWords(line string) []string {
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case quoted:
			word.WriteRune(r)
		case r == '#' && !inWord:
			return dropRedirect(words)
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, word.String()), false
				word.Reset()
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return dropRedirect(words)
}

func dropRedirect(words []string) []string {
	for i, w := range words {
		if w == ">" {
			return words[:i]
		}
	}
	return words
}
