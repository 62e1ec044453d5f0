#!/usr/bin/perl
# Measures forensic fidelity: runs `e2fsck -fn ORIGINAL` under strace, takes
# the byte ranges it read from ORIGINAL (pread64, preadv, preadv2, and read
# or readv at the position lseek left), and compares those bytes with
# IMAGE's at the same offsets.
#
#   fsck_reads.pl [-b BLOCKSIZE] [-w WITHIN] [-n NAMES] [-l LOG] ORIGINAL IMAGE
#   fsck_reads.pl -r [-l LOG] ORIGINAL      prints the ranges read, "OFFSET LENGTH" a line
#
# -b names differing places by block number; -w restricts the comparison
# to the byte ranges listed in file WITHIN ("OFFSET LENGTH" a line);
# -n (with -b) is for scrambled images: bytes may differ in the blocks
# that hold names, those listed in file NAMES (inode tables, symbolic
# links' blocks) and those that in ORIGINAL are directory blocks (a chain
# of entries to the block's end) or extended attribute blocks;
# -l keeps strace's log. Exit status: 0 when every byte read is in IMAGE,
# 1 when some differ (each differing run is listed), 2 on a usage or
# tracing error.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Temp qw(tempfile);
use Getopt::Std;

my %opt;
getopts('b:l:n:rw:', \%opt) or exit 2;
die "-n needs -b\n" if $opt{n} && !$opt{b};
my ($original, $image) = @ARGV;
defined $original && ($opt{r} || defined $image) or die "usage: $0 [-b BS] [-w WITHIN] [-l LOG] ORIGINAL IMAGE\n";
my $path = abs_path($original) // die "$original: not found\n";

# Traces e2fsck; returns the merged list of [start, end) ranges read.
sub ranges_read {
  my ($log, $log_name) = $opt{l} ? (undef, $opt{l}) : tempfile(UNLINK => 1);
  my $pid = fork() // die "fork: $!\n";
  if (!$pid) {
    open(STDOUT, '>', '/dev/null');
    open(STDERR, '>', '/dev/null');
    exec('strace', '-f', '-y', '-s', '0', '-qq', '-o', $log_name,
         '-e', 'trace=openat,open,lseek,pread64,read,preadv,preadv2,readv',
         'e2fsck', '-fn', $path) or exit 127;
  }
  waitpid($pid, 0);
  my $status = $? >> 8;
  # e2fsck -n exits 0, 4 (problems left), 8 (cannot check) or 12.
  die "strace or e2fsck did not run (exit $status)\n" if $status == 127 || $status > 12;
  open(my $in, '<', $log_name) or die "$log_name: $!\n";
  my (%pending, %pos, @read);
  while (my $line = <$in>) {
    chomp $line;
    my $pid = $line =~ s/^(\d+)\s+// ? $1 : 0;
    if ($line =~ /^(.*) <unfinished \.\.\.>$/) { $pending{$pid} = $1; next; }
    if ($line =~ /^<\.\.\. \w+ resumed>(.*)$/) {
      $line = ($pending{$pid} // '') . $1;
      delete $pending{$pid};
    }
    next unless index($line, "<$path>") >= 0;
    if ($line =~ /^(?:openat|open)\(.*= (\d+)<\Q$path\E>/) {
      $pos{$1} = 0;
    } elsif ($line =~ /^lseek\((\d+)<\Q$path\E>, .* = (\d+)$/) {
      $pos{$1} = $2;
    } elsif ($line =~ /^(?:pread64|preadv)\(\d+<\Q$path\E>, .*, (\d+)\) = (\d+)$/ ||
             $line =~ /^preadv2\(\d+<\Q$path\E>, .*, (\d+), [^,]+\) = (\d+)$/) {
      push @read, [$1, $1 + $2] if $2 > 0;
    } elsif ($line =~ /^(?:read|readv)\((\d+)<\Q$path\E>, .* = (\d+)$/) {
      defined $pos{$1} or die "a read of fd $1 at an unknown position: $line\n";
      push @read, [$pos{$1}, $pos{$1} + $2] if $2 > 0;
      $pos{$1} += $2;
    } elsif ($line =~ /^(?:pread64|preadv2?|read|readv|lseek)\(.* = -1 /) {
      next;
    } elsif ($line =~ /^(?:pread64|preadv2?|read|readv)\(/) {
      die "a read strace shows in a way not understood: $line\n";
    }
  }
  @read or die "e2fsck read nothing from $path\n";
  my @merged;
  for my $r (sort { $a->[0] <=> $b->[0] } @read) {
    if (@merged && $r->[0] <= $merged[-1][1]) {
      $merged[-1][1] = $r->[1] if $r->[1] > $merged[-1][1];
    } else {
      push @merged, [@$r];
    }
  }
  return @merged;
}

# The ranges ("OFFSET LENGTH" a line) listed in FILE, as [start, end).
sub ranges_in {
  my ($file) = @_;
  open(my $in, '<', $file) or die "$file: $!\n";
  return sort { $a->[0] <=> $b->[0] } map { my ($o, $l) = split; [$o, $o + $l] } grep { /\d/ } <$in>;
}

# The ranges clipped to those listed in FILE.
sub clip_to {
  my ($file, @ranges) = @_;
  my @within = ranges_in($file);
  my @out;
  for my $r (@ranges) {
    for my $w (@within) {
      my ($s, $e) = ($r->[0] > $w->[0] ? $r->[0] : $w->[0], $r->[1] < $w->[1] ? $r->[1] : $w->[1]);
      push @out, [$s, $e] if $s < $e;
    }
  }
  return @out;
}

# Whether BLOCK (its bytes) is a directory block: entries whose lengths
# chain to its end exactly, or an extended attribute block.
sub holds_names {
  my ($block) = @_;
  return 1 if unpack('V', $block) == 0xEA020000;
  my ($off, $size) = (0, length($block));
  while ($off + 8 <= $size) {
    my ($rec_len, $name_len) = unpack('v C', substr($block, $off + 4, 3));
    $rec_len = 65536 if $size == 65536 && ($rec_len == 0 || $rec_len == 65535);
    return 0 if $rec_len < 8 + $name_len || $rec_len % 4 || $off + $rec_len > $size;
    $off += $rec_len;
  }
  return $off == $size;
}

my @ranges = ranges_read();
if ($opt{r}) {
  print "$_->[0] ", $_->[1] - $_->[0], "\n" for @ranges;
  exit 0;
}
@ranges = clip_to($opt{w}, @ranges) if $opt{w};

open(my $orig, '<:raw', $path) or die "$path: $!\n";
open(my $img, '<:raw', $image) or die "$image: $!\n";
my $bs = $opt{b};
my ($bytes, $differ, @where) = (0, 0);
for my $r (@ranges) {
  my ($start, $end) = @$r;
  for (my $off = $start; $off < $end; $off += 65536) {
    my $n = $end - $off < 65536 ? $end - $off : 65536;
    my ($a, $b) = ('', '');
    sysseek($orig, $off, 0) && sysread($orig, $a, $n);
    sysseek($img, $off, 0) && sysread($img, $b, $n);
    $bytes += $n;
    next if $a eq $b;
    # Walk the chunk for the runs that differ.
    my $run_start;
    for my $i (0 .. $n) {
      my $same = $i < $n && $i < length($b) && substr($a, $i, 1) eq substr($b, $i, 1);
      if (!$same && $i < $n) {
        $run_start //= $off + $i;
        $differ++;
      } elsif (defined $run_start) {
        push @where, [$run_start, $off + $i];
        undef $run_start;
      }
    }
  }
}
# Scrambled: the differences inside blocks that hold names are expected.
if ($opt{n}) {
  my @names = ranges_in($opt{n});
  my %verdict;
  @where = grep {
    my $w = $_;
    my $keep = 0;
    for my $blk (int($w->[0] / $bs) .. int(($w->[1] - 1) / $bs)) {
      $verdict{$blk} //= do {
        my ($s, $e) = ($blk * $bs, ($blk + 1) * $bs);
        my $block = '';
        sysseek($orig, $s, 0) && sysread($orig, $block, $bs);
        (grep { $_->[0] <= $s && $e <= $_->[1] } @names) || holds_names($block);
      };
      $keep = 1 unless $verdict{$blk};
    }
    $keep;
  } @where;
  if (!@where) {
    print "the bytes e2fsck read differ only in blocks that hold names\n";
    exit 0;
  }
  $differ = 0;
  $differ += $_->[1] - $_->[0] for @where;
  print "outside the blocks that hold names, ";
}
if (!@where) {
  print "all $bytes bytes e2fsck read (", scalar(@ranges), " ranges) are in the image\n";
  exit 0;
}
# Merges the differing runs into blocks when the block size is known.
print "$differ of the $bytes bytes e2fsck read differ in the image:\n";
my ($shown, $last) = (0, -1);
for my $w (@where) {
  my $what;
  if ($bs) {
    my ($first, $lastb) = (int($w->[0] / $bs), int(($w->[1] - 1) / $bs));
    next if $lastb <= $last;
    $first = $last + 1 if $first <= $last;
    $last = $lastb;
    $what = $first == $lastb ? "block $first" : "blocks $first-$lastb";
  } else {
    $what = "bytes $w->[0]-" . ($w->[1] - 1);
  }
  print "  $what\n" if $shown++ < 20;
}
print "  ... ", $shown - 20, " more\n" if $shown > 20;
exit 1;
