import Glibc

/// Lines of a file or of standard input.
struct LineSource {
    private let file: UnsafeMutablePointer<FILE>?

    /// Standard input.
    static var standardInput: LineSource { LineSource(file: nil) }

    init?(path: String) {
        guard let f = fopen(path, "r") else { return nil }
        self.init(file: f)
    }

    private init(file: UnsafeMutablePointer<FILE>?) { self.file = file }

    /// The next line without its newline; nil at end of input.
    mutating func next() -> String? {
        guard let file else { return readLine(strippingNewline: true) }
        var buffer: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(buffer) }
        guard getline(&buffer, &capacity, file) >= 0, let buffer else {
            fclose(file)
            self = LineSource(file: nil)
            return nil
        }
        var line = String(cString: buffer)
        if line.hasSuffix("\n") { line.removeLast() }
        return line
    }
}
