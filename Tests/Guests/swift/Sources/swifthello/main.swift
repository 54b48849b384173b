import Foundation

// Arguments, Foundation's JSON and string handling, a file read, a dispatch queue and a
// thread: the Swift runtime's dynamic libraries at work.
let words = CommandLine.arguments.dropFirst().map { $0.uppercased() }
print("hello from Swift:", words.joined(separator: " "))
let json = try JSONSerialization.data(withJSONObject: ["answer": 42, "list": [1, 2, 3]], options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
let hosts = (try? String(contentsOfFile: "/proc/self/exe", encoding: .isoLatin1))?.count ?? -1
print("read own executable:", hosts > 0)
let group = DispatchGroup()
var total = 0
let lock = NSLock()
for i in 1...4 {
    DispatchQueue.global().async(group: group) {
        lock.lock(); total += i * i; lock.unlock()
    }
}
group.wait()
print("sum of squares:", total)
let thread = Thread { print("from a Thread") }
thread.start()
while !thread.isFinished { usleep(1000) }
