import CDNNL

/// A failed oneDNN call, with the status oneDNN returned.
///
/// oneDNN fails for requests it cannot serve (an unsupported shape or layout, memory it could
/// not allocate) and for arguments that do not fit together; both are programming errors in cgt,
/// never user input, so the layers built on this turn them into a precondition failure with
/// this text.
public struct DNNLError: Error, CustomStringConvertible {
    /// The oneDNN function that failed, e.g. "dnnl_primitive_desc_create".
    public let operation: String
    /// What cgt asked for, e.g. "convolution forward 32x14x14 -> 64".
    public let request: String
    public let status: dnnl_status_t

    public var description: String { "oneDNN \(operation) failed for \(request): \(Self.name(of: status))" }

    static func name(of status: dnnl_status_t) -> String {
        switch status {
        case dnnl_out_of_memory: return "out of memory"
        case dnnl_invalid_arguments: return "invalid arguments"
        case dnnl_unimplemented: return "no implementation for these shapes and layouts"
        case dnnl_iterator_ends: return "iterator ends"
        case dnnl_runtime_error: return "runtime error"
        case dnnl_not_required: return "not required"
        default: return "status \(status.rawValue)"
        }
    }
}

/// Every oneDNN call goes through here: a status other than `dnnl_success` becomes a thrown `DNNLError`.
@inline(__always)
public func check(_ status: dnnl_status_t, _ operation: StaticString, _ request: @autoclosure () -> String) throws {
    if status != dnnl_success { throw DNNLError(operation: "\(operation)", request: request(), status: status) }
}

/// For calls that cannot fail once their primitive exists (execution with the memories it was
/// built for): a failure there is a bug in cgt, reported with oneDNN's status.
@inline(__always)
func require(_ status: dnnl_status_t, _ operation: StaticString, _ request: @autoclosure () -> String) {
    if status != dnnl_success {
        preconditionFailure(DNNLError(operation: "\(operation)", request: request(), status: status).description)
    }
}
