package proto

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits shared by the server and the client.
const (
	UsernameMin    = 3
	UsernameMax    = 32
	PasswordMin    = 8    // bytes
	PasswordMax    = 1024 // bytes
	RoomNameMax    = 64
	TextMax        = 4000 // Unicode code points, after trimming
	ClientIDMax    = 64
	PageDefault    = 50
	PageMax        = 200
	MaxBodyBytes   = 64 << 10 // HTTP request bodies
	MaxClientFrame = 32 << 10 // one WebSocket message from a client
	SendRate       = 20       // send frames per second per connection, then rate_limited
	SendBurst      = 40
	JoinRate       = 10 // join and leave frames together per second per connection
	JoinBurst      = 200
)

// NormalizeUsername lowercases name and reports whether the result is a valid username:
// 3–32 of a-z 0-9 _ . -
func NormalizeUsername(name string) (string, bool) {
	name = strings.ToLower(name)
	if len(name) < UsernameMin || len(name) > UsernameMax {
		return name, false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return name, false
		}
	}
	return name, true
}

// ValidPassword reports whether password has 8–1024 bytes.
func ValidPassword(password string) bool {
	return len(password) >= PasswordMin && len(password) <= PasswordMax
}

// ValidRoomName reports whether name has 1–64 of a-z 0-9 -
func ValidRoomName(name string) bool {
	if len(name) < 1 || len(name) > RoomNameMax {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidClientID reports whether id is usable as a send frame's id: 1–64 characters.
func ValidClientID(id string) bool {
	n := utf8.RuneCountInString(id)
	return n >= 1 && n <= ClientIDMax
}

// NormalizeText trims surrounding white space from a message text and checks its length in code
// points. It returns the trimmed text and "" when valid, or the error code to report. A text
// with nothing visible in it (only white space, invisible characters and control characters)
// is empty: see Invisible.
func NormalizeText(text string) (string, string) {
	text = strings.TrimSpace(text)
	switch n := utf8.RuneCountInString(text); {
	case n == 0 || strings.IndexFunc(text, visible) < 0:
		return text, CodeEmptyText
	case n > TextMax:
		return text, CodeTextTooLong
	}
	return text, ""
}

// DMPrefix starts the name of every direct-message room; other rooms cannot be created with it.
const DMPrefix = "dm-"

// MentionNames returns the candidate names of the @mentions in text, in order of appearance,
// possibly repeated: each "@" followed by a valid username (compared lowercased) and not preceded
// by a letter, digit or one of _ . - (so an e-mail address mentions nobody). Whether a name
// belongs to a user is for the server to decide.
func MentionNames(text string) []string {
	var names []string
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || i > 0 && nameByte(text[i-1]) {
			continue
		}
		j := i + 1
		for j < len(text) && nameByte(text[j]) {
			j++
		}
		// A sentence may end right after a name: "thanks @bob." mentions bob.
		end := j
		for end > i+1 && text[end-1] == '.' {
			end--
		}
		if name, ok := NormalizeUsername(text[i+1 : end]); ok {
			names = append(names, name)
		}
		i = j - 1
	}
	return names
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

func visible(r rune) bool { return !Invisible(r) }

// Invisible reports whether r shows nothing on its own: white space, a control character
// (Unicode category Cc, NUL among them), a default-ignorable code point (a zero-width space,
// a joiner, a byte order mark, a variation selector, a Hangul filler...) or the blank Braille
// pattern U+2800, which fonts draw empty. A message made only of such code points is empty.
func Invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(defaultIgnorable, r) || r == '\u2800'
}

// defaultIgnorable is Unicode's Default_Ignorable_Code_Point property, from
// DerivedCoreProperties.txt of Unicode 15.1 (https://www.unicode.org/Public/15.1.0/ucd/DerivedCoreProperties.txt):
// Other_Default_Ignorable_Code_Point (unicode.Other_Default_Ignorable_Code_Point) plus the
// format characters (Cf) and variation selectors that are not white space or visible
// prepended marks. It is written out because the standard library has only the "Other" part.
var defaultIgnorable = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0x00AD, Hi: 0x00AD, Stride: 1}, // soft hyphen
		{Lo: 0x034F, Hi: 0x034F, Stride: 1}, // combining grapheme joiner
		{Lo: 0x061C, Hi: 0x061C, Stride: 1}, // Arabic letter mark
		{Lo: 0x115F, Hi: 0x1160, Stride: 1}, // Hangul choseong and jungseong fillers
		{Lo: 0x17B4, Hi: 0x17B5, Stride: 1}, // Khmer inherent vowels
		{Lo: 0x180B, Hi: 0x180F, Stride: 1}, // Mongolian free variation selectors, vowel separator
		{Lo: 0x200B, Hi: 0x200F, Stride: 1}, // zero width space, non-joiner, joiner; LRM, RLM
		{Lo: 0x202A, Hi: 0x202E, Stride: 1}, // bidirectional embeddings and overrides
		{Lo: 0x2060, Hi: 0x206F, Stride: 1}, // word joiner, invisible operators, bidi isolates
		{Lo: 0x3164, Hi: 0x3164, Stride: 1}, // Hangul filler
		{Lo: 0xFE00, Hi: 0xFE0F, Stride: 1}, // variation selectors
		{Lo: 0xFEFF, Hi: 0xFEFF, Stride: 1}, // zero width no-break space (byte order mark)
		{Lo: 0xFFA0, Hi: 0xFFA0, Stride: 1}, // halfwidth Hangul filler
		{Lo: 0xFFF0, Hi: 0xFFF8, Stride: 1}, // reserved
	},
	R32: []unicode.Range32{
		{Lo: 0x1BCA0, Hi: 0x1BCA3, Stride: 1}, // shorthand format controls
		{Lo: 0x1D173, Hi: 0x1D17A, Stride: 1}, // musical symbol format controls
		{Lo: 0xE0000, Hi: 0xE0FFF, Stride: 1}, // tags, variation selectors supplement, reserved
	},
}
