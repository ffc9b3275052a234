package connlog

import (
	"encoding/json"
	"errors"
	"sync"
)

// Suricata lines are EVE JSON records, one object a line, as Suricata's
// eve-log output writes them. Every record type shares the common section
// (timestamp, event_type, src_ip, src_port, dest_ip, dest_port, proto);
// the connection records are the event types flow and alert:
//
//	{"timestamp":"2026-11-27T10:00:01.123456+0100","flow_id":1,"event_type":"flow","src_ip":"10.0.0.5","src_port":51234,"dest_ip":"45.83.0.21","dest_port":443,"proto":"TCP",...}
//	{"timestamp":"...","event_type":"alert","src_ip":"10.0.0.5",...,"alert":{"signature_id":2018358,"signature":"ET ...","severity":2,...}}
//
// The other event types (dns, http, tls, fileinfo, stats, ...) describe a
// flow that its flow record reports too, or nothing with two endpoints;
// an eve.json holds them all, so they match ErrSkip rather than count as
// broken. A record is taken in the direction Suricata logged it, src_ip as
// the client, as the other formats take theirs.
type eveLine struct {
	EventType *string   `json:"event_type"`
	Timestamp jsonTime  `json:"timestamp"`
	SrcIP     jsonAddr  `json:"src_ip"`
	DestIP    jsonAddr  `json:"dest_ip"`
	DestPort  jsonPort  `json:"dest_port"`
	Proto     jsonProto `json:"proto"`
	Alert     *eveAlert `json:"alert"`
}

// eveAlert is the part of an alert record's "alert" object a Record keeps.
type eveAlert struct {
	Signature   string `json:"signature"`
	SignatureID uint64 `json:"signature_id"`
	Severity    int    `json:"severity"`
}

// maxSignature bounds Alert.Signature: a rule's msg is a line of text, and
// a record must not hold a megabyte of one.
const maxSignature = 256

var eveLines = sync.Pool{New: func() any { return new(eveLine) }}

func (p *Parser) parseSuricata(line []byte) (Record, error) {
	if line[0] != '{' {
		return Record{}, p.fail(line, "not a JSON object")
	}
	l := eveLines.Get().(*eveLine)
	defer eveLines.Put(l)
	*l = eveLine{}
	l.Timestamp.loc = p.loc
	if err := json.Unmarshal(line, l); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return Record{}, p.failf(line, "bad JSON at byte %d: %v", syntax.Offset, err)
		}
		return Record{}, p.failf(line, "bad JSON: %v", err)
	}
	var r Record
	switch {
	case l.EventType == nil:
		return Record{}, p.fail(line, "no event_type: not an EVE record")
	case *l.EventType == "flow":
	case *l.EventType == "alert":
		if l.Alert == nil {
			return Record{}, p.fail(line, "alert record without an alert object")
		}
		r.Alert = Alert{
			Signature:   truncate([]byte(l.Alert.Signature), maxSignature),
			SignatureID: l.Alert.SignatureID,
			Severity:    l.Alert.Severity,
		}
	default:
		return Record{}, p.skip(line, "not a connection record (event_type "+truncate([]byte(*l.EventType), 40)+")")
	}
	switch {
	case l.SrcIP.bad != "":
		return Record{}, p.failf(line, "bad src_ip %s", l.SrcIP.bad)
	case !l.SrcIP.addr.IsValid():
		return Record{}, p.fail(line, "no src_ip")
	case l.DestIP.bad != "":
		return Record{}, p.failf(line, "bad dest_ip %s", l.DestIP.bad)
	case !l.DestIP.addr.IsValid():
		return Record{}, p.fail(line, "no dest_ip")
	}
	r.Src, r.Dst = l.SrcIP.addr, l.DestIP.addr
	if l.DestPort.bad != "" {
		return Record{}, p.failf(line, "bad dest_port %s", l.DestPort.bad)
	}
	r.DPort = l.DestPort.port
	r.Proto = l.Proto.name
	if l.Timestamp.bad != "" {
		return Record{}, p.failf(line, "bad timestamp %s", l.Timestamp.bad)
	}
	r.Time = l.Timestamp.t
	return r, nil
}
