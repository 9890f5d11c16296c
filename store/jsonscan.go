package store

// A fast, allocation-free check of JSON text, shared by the HTTP layer's body
// scanner and the store's value rule (CheckValue): one pass, no reflection,
// no function call per byte.

// isSpace reports JSON's insignificant whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipJSONSpace returns the offset of the first byte at or after i in b that
// is not JSON whitespace.
func SkipJSONSpace(b []byte, i int) int { return skipSpace(b, i) }

// ScanJSONValue checks that one JSON value starts at b[i] (no leading
// space) and returns the offset just past it, and whether it contains
// insignificant whitespace (then it needs compacting). ok is false if it is
// not a complete, valid JSON value by RFC 8259's grammar, or nests deeper
// than 64 levels (decide those with encoding/json). Strings are checked for
// control characters and escapes; their UTF-8 is the caller's to check.
func ScanJSONValue(b []byte, i int) (end int, spaced bool, ok bool) { return scanValue(b, i) }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// maxScanDepth bounds the nesting scanValue follows (one bit per level of
// its stack); deeper values go to the strict parser.
const maxScanDepth = 64

// scanValue is ScanJSONValue. It checks that one JSON value starts at b[i] (no leading space) and
// returns the offset just past it, and whether it contains insignificant
// whitespace (then it needs compacting). ok is false if it is not a complete,
// valid JSON value by RFC 8259's grammar, or nests deeper than maxScanDepth.
// Strings are checked for control characters and escapes; their UTF-8 is
// the caller's to check.
func scanValue(b []byte, i int) (end int, spaced bool, ok bool) {
	var objects uint64 // bit d set: the container at depth d is an object
	depth := 0
	for {
		// A value is expected at b[i].
		if i >= len(b) {
			return 0, false, false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth == maxScanDepth {
				return 0, false, false
			}
			if c == '{' {
				objects |= 1 << depth
			} else {
				objects &^= 1 << depth
			}
			depth++
			j := skipSpace(b, i+1)
			spaced = spaced || j > i+1
			i = j
			if i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']') {
				i++
				depth--
				break // an empty container is a complete value
			}
			if c == '{' {
				if i, ok = scanMemberName(b, i, &spaced); !ok {
					return 0, false, false
				}
			}
			continue // the first element's value
		case c == '"':
			if i, ok = scanString(b, i); !ok {
				return 0, false, false
			}
		case c == '-' || c >= '0' && c <= '9':
			if i, ok = scanNumber(b, i); !ok {
				return 0, false, false
			}
		case c == 't':
			if i, ok = scanLiteral(b, i, "true"); !ok {
				return 0, false, false
			}
		case c == 'f':
			if i, ok = scanLiteral(b, i, "false"); !ok {
				return 0, false, false
			}
		case c == 'n':
			if i, ok = scanLiteral(b, i, "null"); !ok {
				return 0, false, false
			}
		default:
			return 0, false, false
		}
		// A value ended at i: close containers until one continues with a comma.
		for {
			if depth == 0 {
				return i, spaced, true
			}
			j := skipSpace(b, i)
			spaced = spaced || j > i
			i = j
			if i >= len(b) {
				return 0, false, false
			}
			inObject := objects&(1<<(depth-1)) != 0
			if b[i] == ',' {
				j = skipSpace(b, i+1)
				spaced = spaced || j > i+1
				i = j
				if inObject {
					if i, ok = scanMemberName(b, i, &spaced); !ok {
						return 0, false, false
					}
				}
				break // the next element's value
			}
			if inObject && b[i] == '}' || !inObject && b[i] == ']' {
				i++
				depth--
				continue
			}
			return 0, false, false
		}
	}
}

// scanMemberName checks `"name" :` at b[i] and returns the offset of the
// member's value (after any space, which it records in *spaced).
func scanMemberName(b []byte, i int, spaced *bool) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	i, ok := scanString(b, i)
	if !ok {
		return 0, false
	}
	j := skipSpace(b, i)
	*spaced = *spaced || j > i
	if j >= len(b) || b[j] != ':' {
		return 0, false
	}
	k := skipSpace(b, j+1)
	*spaced = *spaced || k > j+1
	return k, true
}

// scanString checks the string literal starting at b[i] == '"' and returns the
// offset just past its closing quote.
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber checks the number starting at b[i] against JSON's grammar
// (-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?) and returns the offset
// just past it.
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}
