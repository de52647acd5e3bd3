package audit

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends e as a JSON object that decodes exactly as encoding/json's encoding
// of it does (field names, omitempty, time in RFC 3339 with nanoseconds; it does not
// escape <, > and &, and writes null for a time encoding/json cannot encode, a year
// outside 0–9999), without reflection: the
// proxy encodes one event per Kubernetes request, and encoding/json was most of the
// audit log's CPU per request. Fields values of types other than strings, numbers,
// booleans, nil and string slices go through encoding/json. FuzzEventJSON checks that
// the two encodings decode to the same event.
func (e *Event) appendJSON(b []byte) []byte {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		b = append(b, `{"time":null`...)
	} else {
		b = append(b, `{"time":"`...)
		b = e.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	if e.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, e.User)
	}
	if len(e.Roles) > 0 {
		b = append(b, `,"roles":`...)
		b = appendStrings(b, e.Roles)
	}
	if e.BotName != "" {
		b = append(b, `,"bot_name":`...)
		b = appendString(b, e.BotName)
	}
	if e.BotInstanceID != "" {
		b = append(b, `,"bot_instance_id":`...)
		b = appendString(b, e.BotInstanceID)
	}
	b = append(b, `,"success":`...)
	b = strconv.AppendBool(b, e.Success)
	if e.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, e.Message)
	}
	if len(e.Fields) > 0 {
		b = append(b, `,"fields":{`...)
		// Keys sorted, as encoding/json writes them; a kube.request has ten, which fit
		// the array on the stack.
		var arr [16]string
		keys := arr[:0]
		for k := range e.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendValue(b, e.Fields[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case []string:
		if v == nil {
			return append(b, "null"...)
		}
		return appendStrings(b, v)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return appendString(b, "unencodable "+strconv.Quote(err.Error()))
	}
	return append(b, data...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. As encoding/json does, invalid UTF-8 becomes
// U+FFFD, and U+2028 and U+2029 are escaped so the line is also safe as JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
