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
