package app

import (
	"regexp"
	"strings"
	"time"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/proto"
)

// groupWithin is how close in time consecutive messages of one author must be to be shown as
// one group, under one name and time.
const groupWithin = 5 * time.Minute

// foldEdits returns the messages as the log shows them: the plain messages, each with the
// latest of its edits applied, or marked deleted; edits and deletions are not shown themselves.
// History pages come with them applied already, which applying again does not change.
func foldEdits(msgs []proto.Message) []proto.Message {
	at := make(map[uint64]int, len(msgs))
	out := make([]proto.Message, 0, len(msgs))
	for _, m := range msgs {
		switch m.Kind {
		case proto.KindEdit, proto.KindDelete:
			i, ok := at[m.Target]
			if !ok {
				continue // its target is older than what is shown
			}
			t := &out[i]
			if m.Kind == proto.KindDelete {
				t.Deleted, t.Text, t.Mentions = true, "", nil
			} else if !t.Deleted {
				ts := m.TS
				t.Text, t.Mentions, t.EditedAt = m.Text, m.Mentions, &ts
			}
		default:
			at[m.Seq] = len(out)
			out = append(out, m)
		}
	}
	return out
}

// richPattern finds the parts of a message's text that are more than text: http and https
// links, and @names.
var richPattern = regexp.MustCompile(`https?://[^\s<>"]+|@[a-z0-9_.-]+`)

// richText renders a message's text as text nodes, links and highlighted mentions of me. It
// builds each node from the parsed text: nothing in a message ever becomes markup.
func richText(text, me string) []goapp.UI {
	var out []goapp.UI
	last := 0
	for _, loc := range richPattern.FindAllStringIndex(text, -1) {
		start, end := loc[0], loc[1]
		part := text[start:end]
		if strings.HasPrefix(part, "@") {
			name := strings.TrimRight(part[1:], ".-")
			if name != me || me == "" || start > 0 && isNameByte(text[start-1]) {
				continue
			}
			end = start + 1 + len(name)
			out = append(out, goapp.Text(text[last:start]), goapp.Mark().Class("mention").Text(text[start:end]))
			last = end
			continue
		}
		link := strings.TrimRight(part, ".,;:!?'")
		// A closing parenthesis belongs to the link only when it opened one.
		for strings.HasSuffix(link, ")") && strings.Count(link, "(") < strings.Count(link, ")") {
			link = strings.TrimRight(link[:len(link)-1], ".,;:!?'")
		}
		if len(link) <= len("https://") {
			continue
		}
		end = start + len(link)
		out = append(out, goapp.Text(text[last:start]),
			goapp.A().Href(link).Target("_blank").Rel("noopener noreferrer nofollow").Text(link))
		last = end
	}
	if last < len(text) {
		out = append(out, goapp.Text(text[last:]))
	}
	return out
}

// isNameByte reports whether c may be part of a user name.
func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// sameDay reports whether two instants fall on the same local day.
func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Local().Date()
	by, bm, bd := b.Local().Date()
	return ay == by && am == bm && ad == bd
}

// dayText names a local day for a separator in the log.
func dayText(t, now time.Time) string {
	switch {
	case sameDay(t, now):
		return "Today"
	case sameDay(t, now.AddDate(0, 0, -1)):
		return "Yesterday"
	case t.Local().Year() == now.Local().Year():
		return t.Local().Format("Monday 2 January")
	}
	return t.Local().Format("Monday 2 January 2006")
}
