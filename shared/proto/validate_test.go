package proto_test

import (
	"strings"
	"testing"
	"unicode"

	"kaiwa/shared/proto"
)

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice", "alice", true},
		{"a.b-c_9", "a.b-c_9", true},
		{"abc", "abc", true},
		{strings.Repeat("a", 32), strings.Repeat("a", 32), true},
		{"ab", "ab", false},
		{strings.Repeat("a", 33), strings.Repeat("a", 33), false},
		{"al ice", "al ice", false},
		{"alice!", "alice!", false},
		{"ålice", "ålice", false},
		{"", "", false},
		// The Kelvin sign lowercases to an ASCII k: it names the same account as "kaiwa".
		{"\u212Aaiwa", "kaiwa", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := proto.NormalizeUsername(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("NormalizeUsername(%q) = %q, %t; want %q, %t", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestValidPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		ok       bool
	}{
		{"7 bytes", "1234567", false},
		{"8 bytes", "12345678", true},
		{"1024 bytes", strings.Repeat("p", 1024), true},
		{"1025 bytes", strings.Repeat("p", 1025), false},
		{"4 runes of 2 bytes", "éééé", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := proto.ValidPassword(tc.password); got != tc.ok {
				t.Errorf("ValidPassword = %t, want %t", got, tc.ok)
			}
		})
	}
}

func TestValidRoomName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"general", true},
		{"a", true},
		{"dev-2", true},
		{strings.Repeat("r", 64), true},
		{"", false},
		{strings.Repeat("r", 65), false},
		{"UPPER", false},
		{"a_b", false},
		{"a.b", false},
		{"a b", false},
		{"é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := proto.ValidRoomName(tc.name); got != tc.ok {
				t.Errorf("ValidRoomName(%q) = %t, want %t", tc.name, got, tc.ok)
			}
		})
	}
}

func TestValidClientID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"empty", "", false},
		{"one", "x", true},
		{"64 runes", strings.Repeat("é", 64), true},
		{"65 runes", strings.Repeat("x", 65), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := proto.ValidClientID(tc.id); got != tc.ok {
				t.Errorf("ValidClientID = %t, want %t", got, tc.ok)
			}
		})
	}
}

func TestNormalizeText(t *testing.T) {
	tests := []struct {
		name, in, want, code string
	}{
		{"plain", "hello", "hello", ""},
		{"trimmed", " \n\thello \r\n", "hello", ""},
		{"blank", " \n\t ", "", proto.CodeEmptyText},
		{"empty", "", "", proto.CodeEmptyText},
		{"4000 code points", strings.Repeat("é", 4000), strings.Repeat("é", 4000), ""},
		{"4000 after trimming", "  " + strings.Repeat("x", 4000) + "  ", strings.Repeat("x", 4000), ""},
		{"4001 code points", strings.Repeat("é", 4001), strings.Repeat("é", 4001), proto.CodeTextTooLong},
		{"zero width spaces", "\u200b\u200b\u200b", "\u200b\u200b\u200b", proto.CodeEmptyText},
		{"Hangul filler", "\u3164", "\u3164", proto.CodeEmptyText},
		{"blank Braille pattern", "\u2800\u2800", "\u2800\u2800", proto.CodeEmptyText},
		{"NUL", "\x00", "\x00", proto.CodeEmptyText},
		{"control characters", "\x01\x1b\x7f\u0085\u009f", "\x01\x1b\x7f\u0085\u009f", proto.CodeEmptyText},
		{"byte order marks", "\ufeff\ufeff", "\ufeff\ufeff", proto.CodeEmptyText},
		{"joiners and marks between spaces", " \u200d\u2060\u200e\u00ad\u034f\ufe0f ", "\u200d\u2060\u200e\u00ad\u034f\ufe0f", proto.CodeEmptyText},
		{"tags", "\U000e0041\U000e007f", "\U000e0041\U000e007f", proto.CodeEmptyText},
		{"ideographic spaces inside invisibles", "\u200b\u3000\u200b", "\u200b\u3000\u200b", proto.CodeEmptyText},
		{"visible among invisibles", "\u200bhi\u200b", "\u200bhi\u200b", ""},
		{"emoji with joiner", "👩\u200d💻", "👩\u200d💻", ""},
		{"4001 zero width spaces", strings.Repeat("\u200b", 4001), strings.Repeat("\u200b", 4001), proto.CodeEmptyText},
		{"4000 counted with the invisibles", "x" + strings.Repeat("\u200b", 3999), "x" + strings.Repeat("\u200b", 3999), ""},
		{"4001 counted with the invisibles", "x" + strings.Repeat("\u200b", 4000), "x" + strings.Repeat("\u200b", 4000), proto.CodeTextTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, code := proto.NormalizeText(tc.in)
			if got != tc.want || code != tc.code {
				t.Errorf("NormalizeText = %.20q, %q; want %.20q, %q", got, code, tc.want, tc.code)
			}
		})
	}
}

// TestInvisible: every code point Unicode lists as Other_Default_Ignorable_Code_Point, every
// control character and the blank Braille pattern is invisible; letters, digits, punctuation
// and symbols are not.
func TestInvisible(t *testing.T) {
	for _, table := range []*unicode.RangeTable{unicode.Other_Default_Ignorable_Code_Point, unicode.Cc, unicode.Variation_Selector, unicode.Join_Control, unicode.Bidi_Control} {
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if unicode.Is(table, r) && !proto.Invisible(r) {
				t.Errorf("U+%04X is not invisible", r)
			}
		}
	}
	if !proto.Invisible('\u2800') {
		t.Error("U+2800 is not invisible")
	}
	for _, r := range "aZ09.!?@é日本ㄱ가😀⠁\u0301" {
		if proto.Invisible(r) {
			t.Errorf("%q (U+%04X) is invisible", r, r)
		}
	}
}
