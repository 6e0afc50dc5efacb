// Pipe harness: runs a Verilated byte-stream design between stdin and stdout.
//
// The top (Verilator --prefix Vtop) has clk, rst and two Amaranth byte streams:
//   i__payload[7:0], i__valid, i__ready   (input:  bytes read from stdin)
//   o__payload[7:0], o__valid, o__ready   (output: bytes written to stdout)
//
// Protocol: every byte on stdin is offered on i, in order; every byte the design hands out on o
// is written to stdout, in order. Nothing else is on either pipe; messages go to stderr.
//
// Scheduling: the model is clocked at full speed while there is work: input bytes not yet
// accepted, o__valid high, or fewer than --idle-cycles cycles since the last transfer on either
// stream (a design may compute for a while between its input and its output). Once quiet for
// that long with nothing pending, the harness flushes stdout and blocks on stdin. At end of
// input it runs until quiet for --idle-cycles and exits 0; if input bytes are then still not
// accepted it exits 2 and says so on stderr.
//
// Options:
//   --trace FILE        write a VCD of every signal
//   --idle-cycles N     quiet cycles before blocking / exiting (default 1000000)
//   --in-stall PCT      randomly withhold i__valid PCT% of cycles (stress, default 0)
//   --out-stall PCT     randomly hold o__ready low PCT% of cycles (stress, default 0)
//   --seed N            seed for the stalls (default 1)
//   --stats             print cycles, bytes and time to stderr on exit
// Exit codes: 0 done, 1 usage or I/O error, 2 input stuck at end of input.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

// Verilator escapes "__" in port names as "___05F" (the hex code of the second '_').
#define I_PAYLOAD i___05Fpayload
#define I_VALID i___05Fvalid
#define I_READY i___05Fready
#define O_PAYLOAD o___05Fpayload
#define O_VALID o___05Fvalid
#define O_READY o___05Fready

namespace {

struct Options {
    const char* trace = nullptr;
    uint64_t idle_cycles = 1000000;
    unsigned in_stall = 0;
    unsigned out_stall = 0;
    uint64_t seed = 1;
    bool stats = false;
};

[[noreturn]] void usage(const char* message) {
    std::fprintf(stderr,
                 "harness: %s\nusage: harness [--trace FILE] [--idle-cycles N] [--in-stall PCT] "
                 "[--out-stall PCT] [--seed N] [--stats]\n",
                 message);
    std::exit(1);
}

uint64_t parse_number(const char* option, const char* text, uint64_t max) {
    char* end = nullptr;
    errno = 0;
    unsigned long long value = std::strtoull(text, &end, 10);
    if (errno || !*text || *end || value > max) {
        std::string message = std::string("bad value for ") + option + ": '" + text + "'";
        usage(message.c_str());
    }
    return value;
}

Options parse(int argc, char** argv) {
    Options options;
    for (int k = 1; k < argc; ++k) {
        std::string arg = argv[k];
        if (arg.rfind("+", 0) == 0) continue;  // Verilator plusargs
        if (arg == "--stats") {
            options.stats = true;
            continue;
        }
        if (k + 1 >= argc) usage(("missing value after " + arg).c_str());
        const char* value = argv[++k];
        if (arg == "--trace") options.trace = value;
        else if (arg == "--idle-cycles") options.idle_cycles = parse_number("--idle-cycles", value, UINT64_MAX);
        else if (arg == "--in-stall") options.in_stall = parse_number("--in-stall", value, 99);
        else if (arg == "--out-stall") options.out_stall = parse_number("--out-stall", value, 99);
        else if (arg == "--seed") options.seed = parse_number("--seed", value, UINT64_MAX);
        else usage(("unknown option " + arg).c_str());
    }
    return options;
}

// xorshift64*: cheap and reproducible for the stall options.
struct Random {
    uint64_t state;
    explicit Random(uint64_t seed) : state(seed ? seed : 0x9E3779B97F4A7C15ull) {}
    unsigned percent() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return (unsigned)((state * 0x2545F4914F6CDD1Dull) >> 32) % 100;
    }
};

// Write all of buf to fd 1; returns false if the reader has gone away.
bool write_all(std::vector<uint8_t>& buf) {
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::write(1, buf.data() + done, buf.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p = {1, POLLOUT, 0};
                ::poll(&p, 1, -1);
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
    Options options = parse(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows up as EPIPE from write()

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
#if VM_TRACE
    if (options.trace) context->traceEverOn(true);
#else
    if (options.trace) usage("--trace needs a model built with --trace");
#endif
    auto top = std::make_unique<Vtop>(context.get(), "top");
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
    if (options.trace) {
        vcd = std::make_unique<VerilatedVcdC>();
        top->trace(vcd.get(), 99);
        vcd->open(options.trace);
        if (!vcd->isOpen()) {
            std::fprintf(stderr, "harness: cannot open trace file '%s'\n", options.trace);
            return 1;
        }
    }
#endif
    auto dump = [&]() {
#if VM_TRACE
        if (vcd) vcd->dump(context->time());
#endif
    };
    uint64_t cycles = 0;
    auto tick = [&]() {  // one rising and one falling edge; inputs already set and evaluated
        context->timeInc(1);
        top->clk = 1;
        top->eval();
        dump();
        context->timeInc(1);
        top->clk = 0;
        top->eval();
        dump();
        ++cycles;
    };

    top->clk = 0;
    top->rst = 1;
    top->I_VALID = 0;
    top->I_PAYLOAD = 0;
    top->O_READY = 0;
    top->eval();
    dump();
    for (int k = 0; k < 4; ++k) tick();
    top->rst = 0;
    top->eval();

    int flags = ::fcntl(0, F_GETFL);
    ::fcntl(0, F_SETFL, flags | O_NONBLOCK);

    Random random(options.seed);
    std::vector<uint8_t> input, output, chunk(1 << 16);
    size_t next = 0;  // index of the next input byte to offer
    bool eof = false;
    uint64_t quiet = 0, bytes_in = 0, bytes_out = 0;
    auto started = std::chrono::steady_clock::now();

    for (;;) {
        bool pending = next < input.size() || top->O_VALID;
        bool idle = !pending && quiet >= options.idle_cycles;
        if (!eof) {
            if (idle && !output.empty() && !write_all(output)) break;
            struct pollfd p = {0, POLLIN, 0};
            int ready = ::poll(&p, 1, idle ? -1 : 0);
            if (ready < 0 && errno != EINTR) {
                std::perror("harness: poll(stdin)");
                return 1;
            }
            if (ready > 0) {
                ssize_t n = ::read(0, chunk.data(), chunk.size());
                if (n == 0) {
                    eof = true;
                } else if (n > 0) {
                    if (next == input.size()) {
                        input.clear();
                        next = 0;
                    } else if (next > (1u << 20)) {
                        input.erase(input.begin(), input.begin() + (ptrdiff_t)next);
                        next = 0;
                    }
                    input.insert(input.end(), chunk.begin(), chunk.begin() + n);
                    quiet = 0;
                } else if (errno != EAGAIN && errno != EINTR) {
                    std::perror("harness: read(stdin)");
                    return 1;
                }
            }
        }
        if (eof && quiet >= options.idle_cycles) {
            if (next < input.size()) {
                write_all(output);
                std::fprintf(stderr,
                             "harness: end of input, but the design accepted no byte for %llu "
                             "cycles; %zu input bytes were never accepted\n",
                             (unsigned long long)quiet, input.size() - next);
                top->final();
                return 2;
            }
            if (!top->O_VALID) break;
        }
        if (!eof && idle) continue;  // poll() returned without data (EINTR)

        // Run a batch of cycles, then look at stdin again.
        for (int k = 0; k < 4096; ++k) {
            bool have = next < input.size();
            bool offer = have && !(options.in_stall && random.percent() < options.in_stall);
            bool accept = !(options.out_stall && random.percent() < options.out_stall);
            top->I_VALID = offer;
            top->I_PAYLOAD = have ? input[next] : 0;
            top->O_READY = accept;
            top->eval();
            bool in_fire = offer && top->I_READY;
            bool out_fire = accept && top->O_VALID;
            uint8_t byte = top->O_PAYLOAD;
            tick();
            if (in_fire) {
                ++next;
                ++bytes_in;
            }
            if (out_fire) {
                output.push_back(byte);
                ++bytes_out;
            }
            quiet = (in_fire || out_fire) ? 0 : quiet + 1;
            if (next == input.size() && !top->O_VALID && quiet >= options.idle_cycles) break;
        }
        if (!output.empty() && !write_all(output)) break;
    }

    bool reader_gone = !write_all(output);
    top->final();
#if VM_TRACE
    if (vcd) vcd->close();
#endif
    if (options.stats) {
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        std::fprintf(stderr, "harness: %llu cycles, %llu bytes in, %llu bytes out, %.3f s, %.2f Mcycles/s\n",
                     (unsigned long long)cycles, (unsigned long long)bytes_in,
                     (unsigned long long)bytes_out, seconds, cycles / seconds / 1e6);
    }
    if (reader_gone) {
        std::fprintf(stderr, "harness: stdout closed by the reader\n");
        return 1;
    }
    return 0;
}
