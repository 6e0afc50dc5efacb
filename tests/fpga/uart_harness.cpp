// UART pin harness: runs a Verilated design with a serial line, as a board's USB bridge would.
//
// The top (Verilator --prefix Vtop) has clk, rst and two 1-bit pins:
//   rx  (input:  the harness sends the bytes it reads, as 8N1 frames)
//   tx  (output: the harness decodes 8N1 frames and writes their bytes)
// Both directions run at --bit-cycles clock cycles per bit (the design's UART divisor), so the
// link runs at its real rate in simulated time. Bytes come from and go to --fd N (one
// bidirectional descriptor, e.g. the master side of a pseudo-terminal), or stdin and stdout.
//
// Scheduling: clocked at full speed while there is work (bytes to send, a frame on either pin,
// or fewer than --idle-cycles cycles since the line last moved: a design computes between a
// command and its answer); once quiet for that long, flush and block on input. At end of input
// (EOF, or EIO when the pty's other side has closed) finish what is pending and exit 0.
//
// Options:
//   --bit-cycles N     cycles per bit, both directions (required, at least 4)
//   --fd N             read and write this descriptor instead of stdin/stdout
//   --idle-cycles N    quiet cycles before blocking (default 1000000)
//   --trace FILE       VCD of every signal
// Exit codes: 0 done, 1 usage or I/O error.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

namespace {

[[noreturn]] void usage(const std::string& message) {
    std::fprintf(stderr,
                 "uart_harness: %s\nusage: uart_harness --bit-cycles N [--fd N] "
                 "[--idle-cycles N] [--trace FILE]\n",
                 message.c_str());
    std::exit(1);
}

uint64_t number(const std::string& option, const char* text) {
    char* end = nullptr;
    errno = 0;
    unsigned long long value = std::strtoull(text, &end, 10);
    if (errno || !*text || *end) usage("bad value for " + option + ": '" + text + "'");
    return value;
}

// Sends queued bytes as 8N1 frames on the design's rx pin.
struct Sender {
    uint64_t bit_cycles;
    std::deque<uint8_t> queue;
    int bit = -1;  // -1 idle; 0 start, 1..8 data, 9 stop
    uint64_t timer = 0;
    uint16_t frame = 0;

    bool busy() const { return bit >= 0 || !queue.empty(); }
    int level() const {  // the line's level in this cycle
        if (bit < 0) return 1;
        return (frame >> bit) & 1;
    }
    void advance() {  // after a cycle
        if (bit < 0) {
            if (queue.empty()) return;
            frame = (uint16_t)(1u << 9 | (unsigned)queue.front() << 1);  // stop, data, start
            queue.pop_front();
            bit = 0;
            timer = 0;
        }
        if (++timer == bit_cycles) {
            timer = 0;
            if (++bit == 10) bit = -1;
        }
    }
    void start_if_idle() {
        if (bit < 0 && !queue.empty()) {
            frame = (uint16_t)(1u << 9 | (unsigned)queue.front() << 1);
            queue.pop_front();
            bit = 0;
            timer = 0;
        }
    }
};

// Decodes 8N1 frames from the design's tx pin, sampling in the middle of each bit.
struct Receiver {
    uint64_t bit_cycles;
    int bit = -1;  // -1 waiting for a start bit
    uint64_t timer = 0;
    uint8_t data = 0;
    uint64_t framing_errors = 0;

    bool busy() const { return bit >= 0; }
    // Returns a byte (0..255) when a frame ends, -1 otherwise.
    int sample(int line) {
        if (bit < 0) {
            if (line == 0) {
                bit = 0;
                timer = bit_cycles / 2;  // to the middle of the start bit
            }
            return -1;
        }
        if (timer > 0) {
            --timer;
            return -1;
        }
        timer = bit_cycles - 1;
        if (bit == 0) {
            if (line != 0) bit = -1;  // a glitch
            else bit = 1;
            return -1;
        }
        if (bit <= 8) {
            data = (uint8_t)(data >> 1 | (line ? 0x80 : 0));
            ++bit;
            return -1;
        }
        bit = -1;  // stop bit
        if (line == 0) {
            ++framing_errors;
            return -1;
        }
        return data;
    }
};

bool write_all(int fd, std::vector<uint8_t>& buf) {
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p = {fd, POLLOUT, 0};
                ::poll(&p, 1, 100);
                continue;
            }
            return false;
        }
        done += (size_t)n;
    }
    buf.clear();
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t bit_cycles = 0, idle_cycles = 1000000;
    int in_fd = 0, out_fd = 1;
    const char* trace = nullptr;
    for (int k = 1; k < argc; ++k) {
        std::string arg = argv[k];
        if (arg.rfind("+", 0) == 0) continue;  // Verilator plusargs
        if (k + 1 >= argc) usage("missing value after " + arg);
        const char* value = argv[++k];
        if (arg == "--bit-cycles") bit_cycles = number(arg, value);
        else if (arg == "--fd") in_fd = out_fd = (int)number(arg, value);
        else if (arg == "--idle-cycles") idle_cycles = number(arg, value);
        else if (arg == "--trace") trace = value;
        else usage("unknown option " + arg);
    }
    if (bit_cycles < 4) usage("--bit-cycles must be at least 4");
    ::signal(SIGPIPE, SIG_IGN);

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
#if VM_TRACE
    if (trace) context->traceEverOn(true);
#else
    if (trace) usage("--trace needs a model built with --trace");
#endif
    auto top = std::make_unique<Vtop>(context.get(), "top");
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
    if (trace) {
        vcd = std::make_unique<VerilatedVcdC>();
        top->trace(vcd.get(), 99);
        vcd->open(trace);
    }
#endif
    auto tick = [&]() {
        context->timeInc(1);
        top->clk = 1;
        top->eval();
#if VM_TRACE
        if (vcd) vcd->dump(context->time());
#endif
        context->timeInc(1);
        top->clk = 0;
        top->eval();
#if VM_TRACE
        if (vcd) vcd->dump(context->time());
#endif
    };

    top->clk = 0;
    top->rst = 1;
    top->rx = 1;
    top->eval();
    for (int k = 0; k < 4; ++k) tick();
    top->rst = 0;
    top->eval();

    ::fcntl(in_fd, F_SETFL, ::fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    Sender sender{bit_cycles};
    Receiver receiver{bit_cycles};
    std::vector<uint8_t> output, chunk(1 << 12);
    uint64_t quiet = 0;
    bool eof = false;

    for (;;) {
        bool busy = sender.busy() || receiver.busy() || top->tx == 0;
        bool idle = !busy && quiet >= idle_cycles;
        if (idle && !output.empty() && !write_all(out_fd, output)) break;
        if (!eof) {
            // Read more only when little is queued: the pty then pushes back on the host.
            if (sender.queue.size() < 4096) {
                struct pollfd p = {in_fd, POLLIN, 0};
                int ready = ::poll(&p, 1, idle ? -1 : 0);
                if (ready < 0 && errno != EINTR) {
                    std::perror("uart_harness: poll");
                    return 1;
                }
                if (ready > 0) {
                    ssize_t n = ::read(in_fd, chunk.data(), chunk.size());
                    if (n > 0) {
                        sender.queue.insert(sender.queue.end(), chunk.begin(), chunk.begin() + n);
                        quiet = 0;
                    } else if (n == 0 || errno == EIO) {
                        eof = true;  // end of input, or the pty's other side closed
                    } else if (errno != EAGAIN && errno != EINTR) {
                        std::perror("uart_harness: read");
                        return 1;
                    }
                }
            }
        } else if (idle) {
            break;
        }
        if (!eof && idle) continue;

        for (int k = 0; k < 4096; ++k) {
            sender.start_if_idle();
            top->rx = sender.level();
            top->eval();
            int line = top->tx;
            tick();
            bool moving = sender.busy() || receiver.busy() || line == 0;
            if (sender.bit >= 0) sender.advance();
            int byte = receiver.sample(line);
            if (byte >= 0) output.push_back((uint8_t)byte);
            quiet = moving ? 0 : quiet + 1;
            if (!moving && quiet >= idle_cycles) break;
        }
        if (!output.empty() && !write_all(out_fd, output)) break;
    }
    write_all(out_fd, output);
    top->final();
#if VM_TRACE
    if (vcd) vcd->close();
#endif
    if (receiver.framing_errors)
        std::fprintf(stderr, "uart_harness: %llu framing errors on the design's tx\n",
                     (unsigned long long)receiver.framing_errors);
    return 0;
}
