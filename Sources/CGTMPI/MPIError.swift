import CMPI

/// A failed MPI call, with the library's own description of the error code.
public struct MPIError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public let message: String

    public var description: String { "\(operation) failed: \(message) (MPI error \(code))" }

    init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        if MPI_Error_string(code, &buffer, &length) == cmpi_success() {
            message = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        } else {
            message = "unknown error"
        }
    }
}

/// Every MPI call goes through here: a code other than MPI_SUCCESS becomes a thrown `MPIError`.
@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
    if code != cmpi_success() { throw MPIError(operation: operation(), code: code) }
}
