package uploadhealth

import "fmt"

// ackErrorNames are the ErrorIds of ERROR acknowledgements (PIC's
// SERVICE_CALL_RESULT values for acks, client/Include.h), as the service
// documents them for PutMedia.
var ackErrorNames = map[uint64]string{
	4000: "error reading the input stream",
	4001: "fragment size over the limit",
	4002: "fragment duration over the limit",
	4003: "connection duration over the limit",
	4004: "fragment timecode not monotonically increasing",
	4005: "multi-track MKV not supported",
	4006: "invalid MKV data",
	4007: "invalid producer timestamp",
	4008: "stream not active",
	4009: "fragment metadata limit reached",
	4010: "track number mismatch",
	4011: "frames missing for a track",
	4012: "more tracks than allowed",
	4500: "KMS key access denied",
	4501: "KMS key disabled",
	4502: "KMS key validation error",
	4503: "KMS key unavailable",
	4504: "invalid use of the KMS key",
	4505: "KMS key in an invalid state",
	4506: "KMS key not found",
	4507: "stream deleted",
	5000: "internal service error",
	5001: "fragment archival error",
	7000: "unknown ERROR acknowledgement",
}

// AckErrorName describes an ERROR acknowledgement's ErrorId.
func AckErrorName(id uint64) string {
	if n, ok := ackErrorNames[id]; ok {
		return n
	}
	return fmt.Sprintf("ErrorId %d", id)
}

// streamErrorNames are the SDK statuses kvssink's stream-error signal
// carries most often (PIC client/Include.h, STATUS_CLIENT_BASE 0x52000000).
var streamErrorNames = map[uint64]string{
	0x52000010: "not authorized (HTTP 403: credentials refused)",
	0x52000011: "DescribeStream call failed",
	0x52000013: "stream is being deleted",
	0x52000017: "stream not found",
	0x52000019: "CreateStream call failed",
	0x5200002a: "GetStreamingToken call failed",
	0x5200002b: "GetDataEndpoint call failed",
	0x5200002d: "PutMedia call failed",
	0x52000031: "unknown service error",
	0x52000036: "stream deleted",
	0x52000037: "service call timed out",
	0x52000049: "invalid streaming token expiration (the credentials are expiring)",
}

// StreamErrorName describes a stream error status.
func StreamErrorName(status uint64) string {
	if n, ok := streamErrorNames[status]; ok {
		return n
	}
	if status >= 0x15000000 && status < 0x16000000 {
		return "credential provider error (the credential file could not be read or its credentials are unusable)"
	}
	return "see the status codes in the Kinesis Video Streams producer SDK"
}
