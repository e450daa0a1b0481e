package proto

import (
	"strings"
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
// points. It returns the trimmed text and "" when valid, or the error code to report.
func NormalizeText(text string) (string, string) {
	text = strings.TrimSpace(text)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
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
