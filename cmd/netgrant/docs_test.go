package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The command lines the README and netgrant(1) show are ones the CLI
// takes: each parses, options and arguments, as the real command.
func TestDocumentedCommandLinesParse(t *testing.T) {
	for _, doc := range []string{"../../README.md", "../../data/man/netgrant.1.scd", "../../data/man/netgrant.conf.5.scd", "../../data/man/netgrantd.8.scd"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		lines := commandLines(string(data))
		if doc == "../../README.md" && len(lines) < 10 {
			t.Fatalf("%s: found only %d command lines: %v", doc, len(lines), lines)
		}
		for _, line := range lines {
			args, ok := shellWords(line.text)
			if !ok {
				t.Errorf("%s: cannot split %q", doc, line.text)
				continue
			}
			if err := parses(args[1:], line.whole); err != nil {
				t.Errorf("%s: %q: %v", doc, line.text, err)
			}
		}
	}
}

// commandLine is a command line a document shows: whole in a code block,
// or a mention in running text, which may leave out arguments.
type commandLine struct {
	text  string
	whole bool
}

// commandLines are netgrant's command lines in a document: code lines
// (indented four spaces, or fenced by ```), continuations joined and
// comments dropped, and code spans that show no placeholders (NAME,
// [options], …).
func commandLines(text string) []commandLine {
	var out []commandLine
	text = strings.ReplaceAll(text, "\\\n", " ")
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		code := strings.HasPrefix(line, "    ") || fenced
		line = strings.TrimSpace(line)
		if !code || !strings.HasPrefix(line, "netgrant ") {
			continue
		}
		if i := strings.Index(line, "  #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		out = append(out, commandLine{line, true})
	}
	for _, m := range regexp.MustCompile("`(netgrant [^`]+)`").FindAllStringSubmatch(text, -1) {
		if !hasPlaceholder(m[1]) {
			out = append(out, commandLine{m[1], false})
		}
	}
	return out
}

func hasPlaceholder(line string) bool {
	if strings.ContainsAny(line, "[…|") || strings.Contains(line, "...") {
		return true
	}
	for _, word := range strings.Fields(line) {
		letters := strings.TrimFunc(word, func(r rune) bool { return !unicode.IsLetter(r) })
		if len(letters) > 1 && strings.ToUpper(letters) == letters {
			return true
		}
	}
	return false
}

// shellWords splits line as a shell would, for lines with plain quoting.
func shellWords(line string) ([]string, bool) {
	var words []string
	var word strings.Builder
	inWord, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, quote == 0
}

// parses runs the CLI's parsing of args, and, for a whole command line,
// its checks of the arguments, without running the command.
func parses(args []string, whole bool) error {
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	cmd, rest, err := root.Find(singleDashCompat(root, args))
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if cmd.HasSubCommands() && cmd.Flags().NArg() > 0 {
		return groupRun(cmd, cmd.Flags().Args())
	}
	if !whole {
		return nil
	}
	return cmd.ValidateArgs(cmd.Flags().Args())
}

func TestParsesCatchesMistakes(t *testing.T) {
	for _, args := range [][]string{
		{"lsit"}, {"network", "crate", "x"}, {"list", "--jsn"}, {"network", "show"}, {"network", "forward", "add", "x"},
	} {
		if parses(args, true) == nil {
			t.Errorf("%q parsed", args)
		}
	}
	if err := parses([]string{"run", "--network", "demo", "--", "qemu", "-m", "1G"}, true); err != nil {
		t.Errorf("a good line: %v", err)
	}
}
