package logging

import (
	"fmt"
	"unicode/utf8"
)

// MaxAnswer bounds the message of an answer to kubelet and any log
// attribute that carries a tool's output: kubelet copies the message into
// the pod's events, and one chatty tool must not fill the log's rotation.
const MaxAnswer = 4 << 10

// Clip bounds s to n bytes, keeping its head and its tail (where tools say
// what they did and why they failed) around a "...[N bytes cut]..." note.
// It never splits a UTF-8 character. Mask before clipping: a cut through a
// secret leaves a fragment no masker can recognise.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	room := n - len(cutNote(len(s)))
	if room < 2 {
		return s[:runeStart(s, n)]
	}
	head := runeStart(s, room/2)
	tail := len(s) - (room - room/2)
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + cutNote(tail-head) + s[tail:]
}

func cutNote(n int) string { return fmt.Sprintf("...[%d bytes cut]...", n) }

// runeStart moves i back to the start of the character it falls in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}
