package criminalip

import (
	"errors"
	"fmt"
	"strings"
)

// Error classes. Every error returned by Client.Report matches exactly one of
// them with errors.Is, so callers decide without parsing text:
//
//	ErrBadKey       the key was refused (401/403); retrying cannot help
//	ErrQuota        rate limited or quota exhausted (429); retry later
//	ErrTransient    5xx, timeout, connection failure; a retry may help
//	ErrBadResponse  malformed JSON, body over the size limit
//	ErrRejected     the API refused this request (another 4xx)
//	ErrNotPublic    the IP is not globally routable; the API was not called
var (
	ErrBadKey      = errors.New("criminal ip: api key refused")
	ErrQuota       = errors.New("criminal ip: rate limited or quota exhausted")
	ErrTransient   = errors.New("criminal ip: transient failure")
	ErrBadResponse = errors.New("criminal ip: bad response")
	ErrRejected    = errors.New("criminal ip: request rejected")
	ErrNotPublic   = errors.New("criminal ip: not a public ip")
)

// Error describes a failed report request. It never holds the API key.
type Error struct {
	Class      error  // one of the Err* sentinels
	IP         string // the IP asked about
	HTTPStatus int    // 0 if no HTTP answer
	APIStatus  int    // the body's "status", 0 if absent
	Message    string // short, key-free description
	Attempts   int    // API calls made for this request
	Err        error  // underlying cause (e.g. context.DeadlineExceeded), may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Class.Error())
	if e.IP != "" {
		fmt.Fprintf(&b, " for %s", e.IP)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (http %d", e.HTTPStatus)
		if e.APIStatus != 0 && e.APIStatus != e.HTTPStatus {
			fmt.Fprintf(&b, ", body status %d", e.APIStatus)
		}
		b.WriteString(")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// Unwrap lets errors.Is match both the class and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Class, e.Err}
	}
	return []error{e.Class}
}

// Retryable reports whether err is worth retrying later (quota or transient).
func Retryable(err error) bool {
	return errors.Is(err, ErrQuota) || errors.Is(err, ErrTransient)
}

// ErrorKind names an error class for metrics, logs and cached error
// verdicts.
type ErrorKind string

// The error kinds, one per class, plus KindOK for success and KindOther for
// an error of no known class.
const (
	KindOK          ErrorKind = "ok"
	KindBadKey      ErrorKind = "bad_key"
	KindQuota       ErrorKind = "quota"
	KindTransient   ErrorKind = "transient"
	KindBadResponse ErrorKind = "bad_response"
	KindRejected    ErrorKind = "rejected"
	KindNotPublic   ErrorKind = "not_public"
	KindOther       ErrorKind = "other"
	// KindBudget is no error of the API: the API budget (`budget`) refused
	// the call, which was not made.
	KindBudget ErrorKind = "budget"
)

// Unavailable reports whether k says the API cannot answer for now (down,
// out of quota, or refusing the key), as opposed to a problem with one IP.
func (k ErrorKind) Unavailable() bool {
	return k == KindTransient || k == KindQuota || k == KindBadKey || k == KindBudget
}

// Kind names err's class.
func Kind(err error) ErrorKind {
	switch {
	case err == nil:
		return KindOK
	case errors.Is(err, ErrBadKey):
		return KindBadKey
	case errors.Is(err, ErrQuota):
		return KindQuota
	case errors.Is(err, ErrTransient):
		return KindTransient
	case errors.Is(err, ErrBadResponse):
		return KindBadResponse
	case errors.Is(err, ErrRejected):
		return KindRejected
	case errors.Is(err, ErrNotPublic):
		return KindNotPublic
	}
	return KindOther
}

// classifyStatus maps an HTTP or body status to a class; nil means success.
func classifyStatus(status int) error {
	switch {
	case status == 200 || status == 0:
		return nil
	case status == 401 || status == 403:
		return ErrBadKey
	case status == 429:
		return ErrQuota
	case status >= 500 || status == 408:
		return ErrTransient
	default:
		return ErrRejected
	}
}
