// A small SVG writer for the CLI's pictures (`hpl profile --plot`): shapes and text in user
// units, escaped; nothing else.
#pragma once

#include <string>

namespace hpl::cli {

class SvgWriter {
 public:
  SvgWriter(double width, double height);
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& dash = "");
  void rect(double x, double y, double w, double h, const std::string& fill,
            const std::string& stroke = "none");
  void circle(double cx, double cy, double r, const std::string& fill,
              const std::string& stroke = "none");
  // anchor: "start", "middle" or "end"; rotate: degrees about (x, y).
  void text(double x, double y, const std::string& s, double size = 11,
            const std::string& anchor = "start", double rotate = 0,
            const std::string& fill = "#222");
  std::string finish() const;  // the document

 private:
  std::string body_;
  double w_, h_;
};

}  // namespace hpl::cli
