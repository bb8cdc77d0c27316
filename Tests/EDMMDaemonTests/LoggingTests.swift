import Glibc
import Logging
import Testing

@testable import EDMMDaemon

/// The log line format, and how edmmd decides that standard error is the journal.
@Suite struct LoggingTests {
    @Test func logfmtValuesWithSpacesQuotesOrNothingAreQuotedAndEscaped() {
        #expect(Logfmt.quoted("17") == "17")
        #expect(Logfmt.quoted("/run/edmmd/control.sock") == "/run/edmmd/control.sock")
        #expect(Logfmt.quoted("pid 4 uid 0 gid 0") == "\"pid 4 uid 0 gid 0\"")
        #expect(Logfmt.quoted("") == "\"\"")
        #expect(Logfmt.quoted("a=b") == "\"a=b\"")
        #expect(Logfmt.quoted("say \"hi\"\\now") == #""say \"hi\"\\now""#)
        #expect(Logfmt.quoted("two\nlines\t\u{1B}") == #""two\nlines\t\u001b""#)
    }

    @Test func journalPrioritiesAreSyslogs() {
        let levels: [(Logger.Level, Int)] = [
            (.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
        for (level, priority) in levels { #expect(Journal.priority(level) == priority, "\(level)") }
    }

    @Test func metadataKeysBecomeValidJournalFieldNames() {
        #expect(Journal.fieldName("enclave") == "ENCLAVE")
        #expect(Journal.fieldName("uid") == "UID")
        #expect(Journal.fieldName("inFlight") == "INFLIGHT")
        #expect(Journal.fieldName("peer.pid") == "PEER_PID")
        #expect(Journal.fieldName("_hidden") == "HIDDEN", "a leading _ is the journal's own")
        #expect(Journal.fieldName("2nd") == "F2ND")
        #expect(Journal.fieldName("message") == nil, "MESSAGE is edmmd's")
        #expect(Journal.fieldName("___") == nil)
        #expect(Journal.fieldName(String(repeating: "k", count: 100))?.count == 64)
    }

    @Test func standardErrorIsTheJournalOnlyWhenJournalStreamNamesItsDeviceAndInode() throws {
        let path = "/tmp/edmmd-journal-stream-\(getpid())"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        var info = stat()
        fstat(fd, &info)
        #expect(LogDestination.detect(journalStream: "\(info.st_dev):\(info.st_ino)", fd: fd) == .journal)
        #expect(LogDestination.detect(journalStream: "\(info.st_dev):\(info.st_ino + 1)", fd: fd) == .standardError)
        #expect(LogDestination.detect(journalStream: nil, fd: fd) == .standardError)
        #expect(LogDestination.detect(journalStream: "garbage", fd: fd) == .standardError)
    }
}
