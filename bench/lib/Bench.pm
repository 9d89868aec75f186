package Bench;

# Helpers shared by the bench/ scripts (core Perl only): a keep-alive
# HTTP/1.1 client, waiting for a port, and starting/stopping processes
# this script started itself.

use strict;
use warnings;

use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

our @EXPORT_OK = qw(connect_port wait_port run_requests spawn stop_pid
                    worker_of smaps read_file);
use Exporter 'import';


sub connect_port {
    my ($port) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp')
        or return undef;
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $s;
    return $s;
}


# Polls until the port accepts a connection (every 2 ms, bounded by
# $timeout seconds); returns the seconds waited, or undef.  $pid, if
# given, must stay alive meanwhile.

sub wait_port {
    my ($port, $timeout, $pid) = @_;

    my $start = time;
    while (time - $start < $timeout) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) {
            close $s;
            return time - $start;
        }
        if (defined $pid && waitpid($pid, WNOHANG) != 0) {
            return undef;
        }
        sleep 0.002;
    }
    return undef;
}


# Sends $n GET requests one after the other on one keep-alive connection
# and reads every response.  Returns a hash: status => count.  Dies if
# the server closes the connection early.

sub run_requests {
    my ($port, $n, $headers, $path) = @_;

    $path //= '/';
    my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              . join('', map { "$_\r\n" } @{ $headers // [] }) . "\r\n";

    my $s = connect_port($port) or die "connect to port $port: $!\n";
    my %status;
    my $buf = '';

    for (my $i = 0; $i < $n; $i++) {
        my $off = 0;
        while ($off < length $req) {
            my $w = syswrite($s, $req, length($req) - $off, $off);
            die "write to port $port: $!\n" unless defined $w;
            $off += $w;
        }

        my ($code, $need);
        for (;;) {
            if (!defined $need) {
                my $end = index($buf, "\r\n\r\n");
                if ($end >= 0) {
                    my $head = substr($buf, 0, $end + 4, '');
                    ($code) = $head =~ m{^HTTP/1\.\d (\d{3})}
                        or die "bad response from port $port: $head\n";
                    my ($cl) = $head =~ /\r\nContent-Length:\s*(\d+)/i;
                    $need = $cl // 0;
                }
            }
            if (defined $need && length($buf) >= $need) {
                substr($buf, 0, $need, '');
                last;
            }
            my $r = sysread($s, $buf, 65536, length $buf);
            die "port $port closed the connection after $i requests\n"
                unless $r;
        }
        $status{$code}++;
    }

    close $s;
    return \%status;
}


sub spawn {
    my (@cmd) = @_;
    my $out = ref $cmd[-1] eq 'HASH' ? pop @cmd : {};

    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        if ($out->{stdout}) {
            open STDOUT, '>>', $out->{stdout} or die "$out->{stdout}: $!";
        }
        if ($out->{stderr}) {
            open STDERR, '>>', $out->{stderr} or die "$out->{stderr}: $!";
        }
        exec @cmd or die "exec $cmd[0]: $!\n";
    }
    return $pid;
}


# Stops a process this script started: SIGTERM, then SIGKILL after
# $grace seconds.

sub stop_pid {
    my ($pid, $grace) = @_;

    $grace //= 10;
    kill 'TERM', $pid;
    my $start = time;
    while (time - $start < $grace) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}


# The (first) child process of $ppid.

sub worker_of {
    my ($ppid) = @_;

    for my $i (1 .. 500) {
        opendir(my $d, '/proc') or die;
        for my $p (grep { /^\d+$/ } readdir $d) {
            my $stat = read_file("/proc/$p/stat") // next;
            my ($pp) = $stat =~ /\) \S+ (\d+)/;
            return $p if defined $pp && $pp == $ppid;
        }
        closedir $d;
        sleep 0.01;
    }
    return undef;
}


# Memory of a process in kB from /proc/PID/smaps_rollup.

sub smaps {
    my ($pid) = @_;

    my $text = read_file("/proc/$pid/smaps_rollup") // return {};
    my %m;
    while ($text =~ /^(\w+):\s+(\d+) kB/mg) {
        $m{$1} = $2;
    }
    $m{Private} = ($m{Private_Clean} // 0) + ($m{Private_Dirty} // 0);
    return \%m;
}


sub read_file {
    my ($path) = @_;

    open(my $f, '<', $path) or return undef;
    local $/;
    my $text = <$f>;
    close $f;
    return $text;
}


1;
